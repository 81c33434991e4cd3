// Package connlimit bounds the connections of the control plane's
// listener, so that clients which open connections and then send nothing,
// or trickle, cannot take every file descriptor and lock the fleet out.
//
// A Limiter counts connections in three classes. General connections
// (any client) are bounded by MaxConns less Reserve less the agent tunnels
// held; past that a new connection first evicts the general connection
// that has waited longest without a request in progress (slow headers, an
// idle keep-alive), if it has waited EvictAfter. Otherwise it is admitted
// into the reserve: there it may make one request, only to a reserved
// path (the agent tunnel, health checks), within ReserveTimeout, and is
// then closed unless it became an agent tunnel. Tunnels — connections
// whose request to a reserved path was hijacked (the agent WebSocket) —
// count against MaxConns only. Connections from one address are bounded
// by MaxPerIP (tunnels excepted, Exempt addresses such as a load balancer
// not counted). Past MaxConns a connection is refused: closed at once.
//
// The path is known only once a request's headers are read, so the
// classes are kept honest by the HTTP server's hooks: Limiter.ConnContext
// and Limiter.ConnState are set on the http.Server, and every request
// passes through Admit before its handler runs. Only controlplane (the
// assembly) and api (the chain, for Admit) import it.
package connlimit
