package sfu

import (
	"sync"

	"github.com/pion/logging"
)

// sharedLoggers hands pion one logger per scope for all PeerConnections.
// pion asks its LoggerFactory for a logger per scope per object (the
// PeerConnection, its ICE agent, DTLS, SRTP and SRTCP sessions, ...), and
// its default factory builds five log.Loggers for each: about 5 kB per
// subscriber that all say the same thing. Loggers keep no per-object
// state (the scope is the prefix), so sharing them changes no output.
type sharedLoggers struct {
	f  logging.LoggerFactory
	mu sync.Mutex
	m  map[string]logging.LeveledLogger
}

// newSharedLoggers wraps f (nil: pion's default factory, which reads the
// PION_LOG_* environment variables).
func newSharedLoggers(f logging.LoggerFactory) *sharedLoggers {
	if f == nil {
		f = logging.NewDefaultLoggerFactory()
	}
	return &sharedLoggers{f: f, m: map[string]logging.LeveledLogger{}}
}

func (s *sharedLoggers) NewLogger(scope string) logging.LeveledLogger {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.m[scope]
	if l == nil {
		l = s.f.NewLogger(scope)
		s.m[scope] = l
	}
	return l
}
