// Package e2e holds end-to-end tests that run control nodes and edges
// together in one process over real loopback sockets.
package e2e
