// The protocol's public face: one peer (Connection, Reply) and the ways to get one:
// connect/listen on the Unix socket, connectTls/listenTls over TCP with mutual TLS, and
// connectController for clients that take either (see socket.ts, tls.ts, address.ts).

export { Connection, Reply, type RequestHandler, type NoteHandler, type HelloHandler } from './peer'
export { connect, connectController, joinServers, listen, type ServerHandle } from './socket'
export { connectTls, listenTls, type TlsServerHandle } from './tls'
export { describeAddress, formatHostPort, isTcp, parseHostPort, type ControllerAddress, type TcpAddress } from './address'
