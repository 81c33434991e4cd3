package amitest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

const banner = "Asterisk Call Manager/11.0.0\r\n"

// session is one client connection, like Asterisk's mansession: one reader
// that handles actions in order, one writer that drains the output queue.
type session struct {
	srv  *Server
	conn net.Conn
	br   *bufio.Reader
	id   uint64
	// Fixed per connection, for security events.
	sessionID, localAddr, remoteAddr string
	sessionTV                        time.Time

	// Guarded by srv.mu (written by the reader goroutine under it).
	authenticated bool
	username      string
	challenge     string

	mu       sync.Mutex
	cond     *sync.Cond
	out      []byte     // ready to write
	held     []byte     // events held while actions are being handled
	holding  bool       // see readLoop
	mask     eventClass // Events mask; 0 until login
	closing  bool       // close after out is written (Logoff, failed login)
	dead     bool       // connection gone: drop everything
	overflow bool
}

func (s *Server) newSession(conn net.Conn) *session {
	s.nextSession++
	c := &session{
		srv:        s,
		conn:       conn,
		id:         s.nextSession,
		sessionID:  fmt.Sprintf("0x%x", 0x7f0000001000+s.nextSession*0x10),
		localAddr:  addrString(conn.LocalAddr()),
		remoteAddr: addrString(conn.RemoteAddr()),
		sessionTV:  s.cfg.Now(),
	}
	c.cond = sync.NewCond(&c.mu)
	// ami.NewReader reuses a *bufio.Reader of at least its size, so the
	// session can peek at what is buffered (see completeMessageBuffered).
	c.br = bufio.NewReaderSize(conn, 32<<10)
	c.out = append(c.out, banner...)
	return c
}

// addrString formats an address like Asterisk's security events:
// IPV4/TCP/127.0.0.1/5038.
func addrString(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return "IPV4/TCP/" + a.String()
	}
	fam := "IPV4"
	if ta.IP.To4() == nil {
		fam = "IPV6"
	}
	return fmt.Sprintf("%s/TCP/%s/%d", fam, ta.IP.String(), ta.Port)
}

// write queues bytes that are not events (responses, list items): they
// are never held and never filtered.
func (c *session) write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.appendLocked(&c.out, b)
	c.cond.Signal()
}

// event queues an event if the session is logged in and wants its class.
// While the session is handling input the event is held back, so the
// Response of an action always precedes the events it caused (README §1,
// transcripts 04f and 09k).
func (c *session) event(class eventClass, ev []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mask&class == 0 {
		return
	}
	if c.holding {
		c.appendLocked(&c.held, ev)
		return
	}
	c.appendLocked(&c.out, ev)
	c.cond.Signal()
}

func (c *session) appendLocked(dst *[]byte, b []byte) {
	if c.dead {
		return
	}
	if len(c.out)+len(c.held)+len(b) > c.srv.cfg.MaxQueuedBytes {
		// A client this far behind is gone for practical purposes;
		// Asterisk drops such sessions too.
		c.overflow = true
		c.dead = true
		c.out, c.held = nil, nil
		c.conn.Close()
		c.cond.Signal()
		return
	}
	*dst = append(*dst, b...)
}

func (c *session) hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// release stops holding events and queues the held ones after whatever
// was written meanwhile.
func (c *session) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if len(c.held) > 0 && !c.dead {
		c.out = append(c.out, c.held...)
		c.held = c.held[:0]
		c.cond.Signal()
	}
}

// closeAfterFlush makes the writer close the connection once everything
// queued so far is written, and drops anything queued later.
func (c *session) closeAfterFlush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	c.held = nil
	c.cond.Signal()
}

func (c *session) setMask(m eventClass) {
	c.mu.Lock()
	c.mask = m
	c.mu.Unlock()
}

func (c *session) writeLoop() {
	var buf []byte
	for {
		c.mu.Lock()
		for len(c.out) == 0 && !c.closing && !c.dead {
			c.cond.Wait()
		}
		if c.dead {
			c.mu.Unlock()
			return
		}
		buf, c.out = c.out, buf[:0]
		closing := c.closing && len(buf) == 0
		if c.closing {
			c.dead = true // nothing queued after this point is written
		}
		c.mu.Unlock()
		if len(buf) > 0 {
			if _, err := c.conn.Write(buf); err != nil {
				c.kill()
				return
			}
		}
		if closing || c.isDead() {
			if tc, ok := c.conn.(*net.TCPConn); ok {
				_ = tc.CloseWrite() // the client sees EOF after our last bytes
			}
			c.conn.Close()
			return
		}
	}
}

func (c *session) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

func (c *session) kill() {
	c.mu.Lock()
	c.dead = true
	c.out, c.held = nil, nil
	c.cond.Signal()
	c.mu.Unlock()
	c.conn.Close()
}

// readLoop reads and handles actions one at a time, as Asterisk's session
// thread does. Events that arrive while it is handling input are held
// until no complete action is waiting in the input buffer, which is when
// Asterisk flushes its event queue (transcript 09k: three "Missing action"
// responses and a Ping response before the three RequestBadFormat events).
func (c *session) readLoop() {
	defer c.finish()
	rd := ami.NewReader(c.br)
	rd.MaxLineBytes = ami.MaxLineBytes
	rd.MaxMessageBytes = c.srv.cfg.MaxMessageBytes
	for {
		m, err := rd.ReadMessage()
		switch {
		case err == nil, errors.Is(err, ami.ErrMessageTooLarge):
			// Asterisk keeps the headers that fit and runs the action.
		case errors.Is(err, ami.ErrLineTooLong):
			c.write(errorResponse(m, "Failed to parse message: line too long"))
			continue
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
			return
		default:
			c.srv.log.Debug("read failed", "session", c.id, "err", err)
			return
		}
		c.hold()
		stop := c.handle(m)
		if !c.completeMessageBuffered() {
			c.release()
		}
		if stop {
			c.release()
			return
		}
	}
}

// completeMessageBuffered reports whether a whole action (or a stray blank
// line) is already buffered, i.e. whether Asterisk would go on reading
// before it flushes events.
func (c *session) completeMessageBuffered() bool {
	n := c.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := c.br.Peek(n)
	if b[0] == '\n' || (len(b) > 1 && b[0] == '\r' && b[1] == '\n') {
		return true
	}
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\r\n"))
}

// finish unregisters the session; the writer drains what is queued (e.g.
// the Goodbye) and closes the socket.
func (c *session) finish() {
	c.srv.mu.Lock()
	delete(c.srv.sessions, c)
	c.srv.mu.Unlock()
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		c.held = nil
	}
	c.cond.Signal()
	c.mu.Unlock()
}
