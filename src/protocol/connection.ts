// The socket protocol's public face: one peer (Connection, Reply) and the two ways to
// get one (connect for clients, listen for the controller). See peer.ts and socket.ts.

export { Connection, Reply, type RequestHandler, type NoteHandler, type HelloHandler } from './peer'
export { connect, listen, type ServerHandle } from './socket'
