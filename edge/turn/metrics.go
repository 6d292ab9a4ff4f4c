package turn

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Auth failure and rejection reasons (metric labels).
const (
	reasonMalformed     = "malformed"      // username is not "expiry:participant"
	reasonExpired       = "expired"        // Allocate with an expired credential
	reasonBadCredential = "bad_credential" // MESSAGE-INTEGRITY did not match (wrong password or realm)
	reasonQuota         = "quota"          // MaxAllocationsPerUser reached
	reasonPolicy        = "policy"         // AllowParticipant refused
	reasonNotAdmitted   = "not_admitted"   // Refresh/CreatePermission/ChannelBind while AllowParticipant refuses
)

type metrics struct {
	allocations        prometheus.Gauge
	allocationsTotal   prometheus.Counter
	allocationsRefused *prometheus.CounterVec
	authFailures       *prometheus.CounterVec
	permissionsDenied  prometheus.Counter
	allocationsRevoked prometheus.Counter

	reg        prometheus.Registerer
	registered []prometheus.Collector
}

func newMetrics() *metrics {
	m := &metrics{
		allocations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_turn_allocations",
			Help: "TURN allocations currently open.",
		}),
		allocationsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_turn_allocations_total",
			Help: "TURN allocations created.",
		}),
		allocationsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_turn_allocations_refused_total",
			Help: "Authenticated TURN allocations refused, by reason (quota, policy).",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_turn_auth_failures_total",
			Help: "TURN requests refused at authentication, by reason (malformed, expired, bad_credential, not_admitted).",
		}, []string{"reason"}),
		permissionsDenied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_turn_permissions_denied_total",
			Help: "TURN CreatePermission/ChannelBind/Connect requests refused by the peer policy.",
		}),
		allocationsRevoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_turn_allocations_revoked_total",
			Help: "TURN allocations closed because their participant was no longer allowed (removed, denied or gone from this edge).",
		}),
	}
	for _, r := range []string{reasonQuota, reasonPolicy} {
		m.allocationsRefused.WithLabelValues(r)
	}
	for _, r := range []string{reasonMalformed, reasonExpired, reasonBadCredential, reasonNotAdmitted} {
		m.authFailures.WithLabelValues(r)
	}
	return m
}

// register adds the collectors to reg (nil: nothing). On error the ones
// already registered are removed again.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	m.reg = reg
	for _, c := range []prometheus.Collector{
		m.allocations, m.allocationsTotal, m.allocationsRefused, m.authFailures, m.permissionsDenied, m.allocationsRevoked,
	} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return errors.Join(errors.New("turn: registering metrics"), err)
		}
		m.registered = append(m.registered, c)
	}
	return nil
}

func (m *metrics) unregister() {
	for _, c := range m.registered {
		m.reg.Unregister(c)
	}
	m.registered = nil
}
