// Package ami is Switchboard's Asterisk Manager Interface client.
//
// It owns the wire codec (messages as ordered header lists, CRLF or bare LF
// line ends, duplicate headers kept, CR/LF/NUL injection refused before
// anything is sent), action/response correlation by ActionID with many
// actions in flight on one connection, event lists, asynchronous Originate
// correlation, event subscribers with bounded buffers, keepalive and
// reconnect.
//
// Its behaviour follows captures of a real Asterisk 22 (see
// shared/ami-transcripts); the fake server in amitest answers like them.
package ami
