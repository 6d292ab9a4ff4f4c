package webhooks

import (
	"context"
	"time"
)

// Status of a delivery.
type Status string

// Delivery statuses. A delivery starts pending and ends delivered or failed;
// only Redeliver moves it back to pending.
const (
	StatusPending   Status = "pending"
	StatusDelivered Status = "delivered"
	StatusFailed    Status = "failed"
)

// Delivery is one event bound for one endpoint, as the outbox holds it.
// Everything here is fixed at enqueue time except Attempts, NextAttempt and
// RedeliveredAt, which only change through Record / Redeliver.
type Delivery struct {
	// ID is sent as webhook-id: identical on every attempt, so receivers
	// dedupe retries.
	ID        string
	EventType string
	// RoomID is the ordering key together with URL: one room's deliveries to
	// one endpoint are attempted strictly one at a time in enqueue order.
	RoomID string
	URL    string
	// Body is the exact compact JSON sent and signed (see Envelope). The
	// dispatcher never modifies it.
	Body []byte
	// SecretRef names the whsec_ secret that signs the delivery (the API key
	// that owns the room); Secrets resolves it.
	SecretRef string
	// Attempts made so far.
	Attempts int
	// NextAttempt is the earliest time of the next attempt.
	NextAttempt time.Time
	// CreatedAt is the enqueue time; MaxAge counts from it (or from
	// RedeliveredAt when later).
	CreatedAt time.Time
	// RedeliveredAt is set by a manual Redeliver and restarts the MaxAge
	// window. Zero if never redelivered.
	RedeliveredAt time.Time
}

// Deadline is when the dispatcher gives up on d: MaxAge after CreatedAt, or
// after RedeliveredAt when that is later.
func (d Delivery) Deadline(maxAge time.Duration) time.Time {
	start := d.CreatedAt
	if d.RedeliveredAt.After(start) {
		start = d.RedeliveredAt
	}
	return start.Add(maxAge)
}

// orderingKey groups the deliveries that must go out one at a time.
func (d Delivery) orderingKey() string {
	if d.RoomID == "" {
		return "\x00id\x00" + d.ID
	}
	return d.RoomID + "\x00" + d.URL
}

// AttemptResult is the outcome of one attempt, written back through
// Outbox.Record. It maps one-to-one onto a replicated "record delivery"
// command.
type AttemptResult struct {
	ID string
	// Status is StatusPending when another attempt is scheduled at
	// NextAttempt, StatusDelivered or StatusFailed when the delivery is done.
	Status Status
	// Attempts is the attempt count including this one. The store should
	// apply the result only if its stored count is Attempts-1 and the
	// delivery is still pending (compare-and-set): a late report from an old
	// leader, or one that raced a Redeliver, is then ignored.
	Attempts    int
	NextAttempt time.Time // when Status is pending; zero otherwise
	AttemptedAt time.Time // start of this attempt
	// DoneAt is set when Status is delivered or failed.
	DoneAt time.Time
	// LastStatusCode is the HTTP status of this attempt, 0 when no response.
	LastStatusCode int
	// LastError describes a failed attempt ("" on success), short and safe
	// to show to the project owner.
	LastError string
	LatencyMs int64
	// EndpointGone is set when the receiver answered 410 Gone: the delivery
	// failed permanently and the endpoint should be disabled (and its other
	// pending deliveries failed) by the owner of the subscription.
	EndpointGone bool
}

// Outbox is the durable, replicated store of pending deliveries, implemented
// by control/state over Raft. The dispatcher is its only writer of attempt
// results, and only runs on the leader.
type Outbox interface {
	// Pending returns up to limit pending deliveries in enqueue order, starting
	// after cursor ("" = the oldest), and the cursor to continue from (""
	// when there are no more). Cursors are opaque and only live for one scan,
	// but must stay valid while the outbox changes under the scan: a delivery
	// that stops being pending may vanish from later pages; a delivery that
	// is still pending must never be skipped, since the first delivery seen
	// for an ordering key is taken as that key's head.
	Pending(cursor string, limit int) (page []Delivery, next string, err error)
	// Record replicates an attempt's outcome. It returns once the result is
	// applied to the state Pending reads, so the next scan sees it. An error
	// means the outcome may not be recorded; the dispatcher retries a few
	// times and otherwise the attempt is repeated later (at-least-once).
	Record(ctx context.Context, r AttemptResult) error
}

// Announcer is an Outbox that wants to know where an attempt leaves from
// before it is made: control/state lists the node in the sovereignty audit
// of the delivery's session, which a node that dies during the attempt
// could not do afterwards. The dispatcher calls Announce before every
// attempt, with the attempt's start, and makes the attempt only if it
// returns nil (otherwise the delivery stays due and a later scan tries
// again). Announce should return at once when it has nothing new to say.
type Announcer interface {
	Announce(ctx context.Context, d Delivery, at time.Time) error
}
