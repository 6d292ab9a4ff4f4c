package state

import (
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
)

// The operator console's replicated records: sign-ins in progress, browser
// sessions, the local bootstrap admin and the audit log. They live in Raft
// so that any control node accepts a session and a leader change logs
// nobody out. Tokens are stored only as SHA-256 hashes: the log and the
// snapshots never hold a usable cookie or OIDC state.

const (
	tConsoleLogins   = "consoleLogins"   // *LoginAttempt by state hash
	tConsoleSessions = "consoleSessions" // *ConsoleSession by token hash
	tConsoleAdmins   = "consoleAdmins"   // *LocalAdmin by user name
	tConsoleAudit    = "consoleAudit"    // *AuditEntry by sequence (Raft index)
	// tConsoleUsedStates holds the states of completed sign-ins until they
	// expire, so that a replayed callback is refused on every node.
	tConsoleUsedStates = "consoleUsedStates" // *UsedLoginState by state hash
)

// CmdUseLoginState records that a sign-in's state was used (console range,
// see fsm.go). Proposers set IgnoreUnknownFlag: a node of an older version
// skips it (it only loses the replay marker, not replicated data it knows).
const CmdUseLoginState CommandType = 48

// Bounds that keep unauthenticated callers from growing the state: sign-ins
// in progress are capped, and the audit log keeps its newest entries.
// (Sign-ins in progress now live in the browser's sealed cookie; the table
// and its commands remain for logs and snapshots written by older versions.)
const MaxLoginAttempts = 10000

// MaxAuditEntries is how many audit entries are kept (a variable so tests
// can exercise the trimming).
var MaxAuditEntries = 100000

// LoginAttempt is an OpenID Connect sign-in between the redirect to the
// identity provider and its callback. It is consumed exactly once. Only
// older versions wrote it (see UsedLoginState).
type LoginAttempt struct {
	StateHash string `json:"stateHash"` // SHA-256 of the state parameter
	// NonceHash is the SHA-256 of the nonce sent to the IdP: the ID token
	// must carry the nonce whose hash this is.
	NonceHash string `json:"nonceHash"`
	// VerifierEnc is the PKCE code verifier, sealed with the cluster key.
	VerifierEnc []byte `json:"verifierEnc"`
	// Purpose is "console" or "meet:<roomId>" (a participant signing in).
	Purpose   string    `json:"purpose"`
	ReturnTo  string    `json:"returnTo,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// UsedLoginState is the state of a sign-in that completed (its code was
// exchanged and its ID token verified), kept until the sign-in would have
// expired anyway: a replay of the callback is refused on every node. Only
// a sign-in the identity provider vouched for writes one, so callers
// without an IdP account cannot grow this table.
type UsedLoginState struct {
	StateHash string    `json:"stateHash"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// UseLoginState records a sign-in's state as used; a second use (or one at
// or after its expiry) is refused with CodeForbidden.
type UseLoginState struct {
	StateHash string    `json:"stateHash"`
	ExpiresAt time.Time `json:"expiresAt"`
	At        time.Time `json:"at"`
}

// ConsoleSession is a signed-in operator.
type ConsoleSession struct {
	ID        string    `json:"id"` // SHA-256 of the cookie value
	Issuer    string    `json:"issuer,omitempty"`
	Subject   string    `json:"subject"`
	Email     string    `json:"email,omitempty"`
	Name      string    `json:"name,omitempty"`
	Role      string    `json:"role"`
	Via       string    `json:"via"` // "oidc" or "local"
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	LastSeen  time.Time `json:"lastSeen"`
	ExpiresAt time.Time `json:"expiresAt"` // absolute timeout
}

// Expired reports whether the session is past its absolute timeout or has
// been idle for longer than idle at now.
func (s *ConsoleSession) Expired(now time.Time, idle time.Duration) bool {
	return !now.Before(s.ExpiresAt) || (idle > 0 && !now.Before(s.LastSeen.Add(idle)))
}

// LocalAdmin is the bootstrap administrator that signs in with a password
// (bcrypt hash) before an identity provider is configured.
type LocalAdmin struct {
	Username     string    `json:"username"`
	PasswordHash string    `json:"passwordHash"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// AuditEntry records one operator action: who, what, when, from where.
type AuditEntry struct {
	Seq       uint64    `json:"seq"` // the Raft index that recorded it
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"` // e-mail, subject or "admin-token"
	Subject   string    `json:"subject,omitempty"`
	Issuer    string    `json:"issuer,omitempty"`
	Role      string    `json:"role,omitempty"`
	Via       string    `json:"via"` // console, admin-token, oidc, local
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
	Status    int       `json:"status"`
	Detail    string    `json:"detail,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
	RequestID string    `json:"requestId,omitempty"`
	Project   string    `json:"project,omitempty"`
}

// StartLogin stores a sign-in in progress.
type StartLogin struct {
	Attempt LoginAttempt `json:"attempt"`
}

// FinishLogin consumes a sign-in: it answers the attempt once and then
// never again (a replayed state is refused on every node).
type FinishLogin struct {
	StateHash string    `json:"stateHash"`
	At        time.Time `json:"at"`
}

// CreateConsoleSession stores a new session.
type CreateConsoleSession struct {
	Session ConsoleSession `json:"session"`
}

// TouchConsoleSession moves a session's last activity forward (idle timeout).
type TouchConsoleSession struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// EndConsoleSession removes a session (logout).
type EndConsoleSession struct {
	ID string `json:"id"`
}

// RecordConsoleAudit appends an entry to the audit log.
type RecordConsoleAudit struct {
	Entry AuditEntry `json:"entry"`
}

// PruneConsole drops sessions and sign-ins that expired at At (sessions
// also when idle for Idle).
type PruneConsole struct {
	At   time.Time     `json:"at"`
	Idle time.Duration `json:"idle"`
}

// SetLocalAdmin creates or replaces the bootstrap admin's password hash.
type SetLocalAdmin struct {
	Admin LocalAdmin `json:"admin"`
}

var consoleTables = []*memdb.TableSchema{
	table(tConsoleLogins,
		ix("id", true, always(func(a *LoginAttempt) []byte { return keyOf(a.StateHash) })),
		ix("expires", false, always(func(a *LoginAttempt) []byte { return keyOf(a.ExpiresAt) }))),
	table(tConsoleSessions,
		ix("id", true, always(func(s *ConsoleSession) []byte { return keyOf(s.ID) })),
		ix("expires", false, always(func(s *ConsoleSession) []byte { return keyOf(s.ExpiresAt) }))),
	table(tConsoleAdmins, ix("id", true, always(func(a *LocalAdmin) []byte { return keyOf(a.Username) }))),
	table(tConsoleAudit, ix("id", true, always(func(e *AuditEntry) []byte { return keyOf(e.Seq) })),
		// The log's filters (AuditPage), each with a counter (auditCounters).
		ix("actor", false, always(func(e *AuditEntry) []byte { return keyOf(e.Actor, e.Seq) })),
		ix("action", false, always(func(e *AuditEntry) []byte { return keyOf(e.Action, e.Seq) }))),
	table(tConsoleUsedStates,
		ix("id", true, always(func(u *UsedLoginState) []byte { return keyOf(u.StateHash) })),
		ix("expires", false, always(func(u *UsedLoginState) []byte { return keyOf(u.ExpiresAt) }))),
}

func init() {
	// The tables join the schema here rather than in schema.go's list; the
	// schema map exists before any init runs, and newDB reads it later.
	for _, t := range consoleTables {
		if err := t.Validate(); err != nil {
			panic("state: schema: " + err.Error())
		}
		dbSchema.Tables[t.Name] = t
	}
	register(CmdStartLogin, applyStartLogin)
	register(CmdFinishLogin, applyFinishLogin)
	register(CmdCreateConsoleSession, applyCreateConsoleSession)
	register(CmdTouchConsoleSession, applyTouchConsoleSession)
	register(CmdEndConsoleSession, applyEndConsoleSession)
	register(CmdRecordConsoleAudit, applyRecordConsoleAudit)
	register(CmdPruneConsole, applyPruneConsole)
	register(CmdSetLocalAdmin, applySetLocalAdmin)
	register(CmdUseLoginState, applyUseLoginState)
}

func applyUseLoginState(s *Store, index uint64, c *UseLoginState) (any, error) {
	if c.StateHash == "" || c.ExpiresAt.IsZero() {
		return nil, errf(CodeInvalid, "used sign-in state needs a state hash and an expiry")
	}
	if !c.At.Before(c.ExpiresAt) {
		return nil, errf(CodeForbidden, "sign-in state expired")
	}
	if one[*UsedLoginState](s, tConsoleUsedStates, "id", c.StateHash) != nil {
		return nil, errf(CodeForbidden, "sign-in state already used")
	}
	s.put(tConsoleUsedStates, &UsedLoginState{StateHash: c.StateHash, ExpiresAt: c.ExpiresAt})
	s.count("console/usedStates", 1)
	return nil, nil
}

func applyStartLogin(s *Store, index uint64, c *StartLogin) (any, error) {
	a := c.Attempt
	if a.StateHash == "" || a.NonceHash == "" || len(a.VerifierEnc) == 0 || !a.ExpiresAt.After(a.CreatedAt) {
		return nil, errf(CodeInvalid, "sign-in needs state, nonce, verifier and an expiry after its start")
	}
	if one[*LoginAttempt](s, tConsoleLogins, "id", a.StateHash) != nil {
		return nil, errf(CodeConflict, "sign-in state already in use")
	}
	if s.counter("console/logins") >= MaxLoginAttempts {
		return nil, errf(CodeConflict, "too many sign-ins in progress; try again in a few minutes")
	}
	s.put(tConsoleLogins, &a)
	s.count("console/logins", 1)
	return nil, nil
}

func applyFinishLogin(s *Store, index uint64, c *FinishLogin) (any, error) {
	a := one[*LoginAttempt](s, tConsoleLogins, "id", c.StateHash)
	if a == nil {
		return nil, errf(CodeForbidden, "unknown or already used sign-in state")
	}
	// Consumed even when expired (the caller refuses it then, from the
	// command's time): a state is never accepted twice.
	s.del(tConsoleLogins, a)
	s.count("console/logins", -1)
	cp := *a
	return &cp, nil
}

func applyCreateConsoleSession(s *Store, index uint64, c *CreateConsoleSession) (any, error) {
	ss := c.Session
	if ss.ID == "" || ss.Subject == "" || ss.Role == "" || !ss.ExpiresAt.After(ss.CreatedAt) {
		return nil, errf(CodeInvalid, "session needs id, subject, role and an expiry after its start")
	}
	if one[*ConsoleSession](s, tConsoleSessions, "id", ss.ID) != nil {
		return nil, errf(CodeConflict, "session id already in use")
	}
	s.put(tConsoleSessions, &ss)
	return nil, nil
}

func applyTouchConsoleSession(s *Store, index uint64, c *TouchConsoleSession) (any, error) {
	cur := one[*ConsoleSession](s, tConsoleSessions, "id", c.ID)
	if cur == nil {
		return nil, errf(CodeNotFound, "session not found")
	}
	if c.At.After(cur.LastSeen) {
		cp := *cur // copy-on-write: readers may hold cur
		cp.LastSeen = c.At
		s.put(tConsoleSessions, &cp)
	}
	return nil, nil
}

func applyEndConsoleSession(s *Store, index uint64, c *EndConsoleSession) (any, error) {
	if cur := one[*ConsoleSession](s, tConsoleSessions, "id", c.ID); cur != nil {
		s.del(tConsoleSessions, cur)
	}
	return nil, nil
}

func applyRecordConsoleAudit(s *Store, index uint64, c *RecordConsoleAudit) (any, error) {
	e := c.Entry
	if e.Action == "" || e.Actor == "" {
		return nil, errf(CodeInvalid, "audit entry needs an actor and an action")
	}
	e.Seq = index
	s.putAudit(&e)
	// Oldest first: drop what is beyond the bound. Only those are read (a
	// write at the bound used to collect all 100,000 entries first); they
	// are collected before the deletes, which must not run under the walk.
	if over := s.counter("console/audit") - MaxAuditEntries; over > 0 {
		oldest, _ := scan[*AuditEntry](s.iter(tConsoleAudit, "id", false), Page{Limit: over}, false, nil)
		for _, old := range oldest {
			s.del(tConsoleAudit, old)
			s.recount(auditCounters(old), nil)
		}
	}
	return e.Seq, nil
}

func applyPruneConsole(s *Store, index uint64, c *PruneConsole) (any, error) {
	n := 0
	for _, a := range expired(s, tConsoleLogins, c.At, func(a *LoginAttempt) time.Time { return a.ExpiresAt }) {
		s.del(tConsoleLogins, a)
		s.count("console/logins", -1)
		n++
	}
	for _, u := range expired(s, tConsoleUsedStates, c.At, func(u *UsedLoginState) time.Time { return u.ExpiresAt }) {
		s.del(tConsoleUsedStates, u)
		s.count("console/usedStates", -1)
		n++
	}
	// Sessions expire on either timeout; operators have few of them.
	for _, ss := range all[*ConsoleSession](s.iter(tConsoleSessions, "id", false)) {
		if ss.Expired(c.At, c.Idle) {
			s.del(tConsoleSessions, ss)
			n++
		}
	}
	return n, nil
}

func applySetLocalAdmin(s *Store, index uint64, c *SetLocalAdmin) (any, error) {
	a := c.Admin
	if a.Username == "" || a.PasswordHash == "" {
		return nil, errf(CodeInvalid, "local admin needs a user name and a password hash")
	}
	s.put(tConsoleAdmins, &a)
	return nil, nil
}

// ConsoleSession returns a session by the hash of its cookie.
func (s *Store) ConsoleSession(id string) (*ConsoleSession, bool) {
	ss := one[*ConsoleSession](s, tConsoleSessions, "id", id)
	if ss == nil {
		return nil, false
	}
	cp := *ss
	return &cp, true
}

// ConsoleSessions lists every session (operators have a handful).
func (s *Store) ConsoleSessions() []*ConsoleSession {
	out := []*ConsoleSession{}
	for _, ss := range all[*ConsoleSession](s.iter(tConsoleSessions, "id", false)) {
		cp := *ss
		out = append(out, &cp)
	}
	return out
}

// LoginAttemptCount is the number of sign-ins in progress that older
// versions stored in Raft.
func (s *Store) LoginAttemptCount() int { return s.counter("console/logins") }

// LoginStateUsed reports whether a sign-in with this state hash completed.
func (s *Store) LoginStateUsed(stateHash string) bool {
	return one[*UsedLoginState](s, tConsoleUsedStates, "id", stateHash) != nil
}

// UsedLoginStateCount is the number of used states kept until they expire.
func (s *Store) UsedLoginStateCount() int { return s.counter("console/usedStates") }

// LocalAdmin returns the bootstrap admin with that user name.
func (s *Store) LocalAdmin(username string) (*LocalAdmin, bool) {
	a := one[*LocalAdmin](s, tConsoleAdmins, "id", username)
	if a == nil {
		return nil, false
	}
	cp := *a
	return &cp, true
}

// AuditFilter narrows the audit log.
type AuditFilter struct {
	Actor  string
	Action string // prefix match ("POST /v2/rooms")
}

// The audit log is counted as a whole, per actor and per action (an
// action is a method and a route pattern, so there are as many as routes).
func auditCounters(e *AuditEntry) []string {
	return []string{"console/audit", auditActorCounter(e.Actor), auditActionCounter(e.Action)}
}

func auditActorCounter(actor string) string   { return "console/audit/actor/" + actor }
func auditActionCounter(action string) string { return "console/audit/action/" + action }

func (s *Store) putAudit(e *AuditEntry) {
	s.put(tConsoleAudit, e)
	s.recount(nil, auditCounters(e))
}

// AuditPage returns a page of the audit log, newest first, and how many
// entries match. Every filter is a walk of its own rows: an actor's index;
// an action prefix the merge of the indexes of the actions it matches
// (found through their counters, which also sum to its total); both
// together the shorter of the two, counting the rows that match the other.
func (s *Store) AuditPage(f AuditFilter, p Page) ([]*AuditEntry, int) {
	var lists []listFilter
	actionTotal := 0
	if f.Action != "" {
		var actions []string // the actions the prefix matches, and their total
		it := s.iter(tCounters, "id", false, stringPrefix(auditActionCounter(f.Action)))
		for v := it.Next(); v != nil; v = it.Next() {
			if c := v.(*counter); c.N > 0 {
				actions = append(actions, c.Key[len(auditActionCounter("")):])
				actionTotal += c.N
			}
		}
		lists = append(lists, listFilter{total: actionTotal, walk: func(newestFirst bool) memdb.ResultIterator {
			its := make([]memdb.ResultIterator, len(actions))
			for i, a := range actions {
				its[i] = s.iter(tConsoleAudit, "action", newestFirst, a)
			}
			return mergeBySeq(its, newestFirst)
		}})
	}
	if f.Actor != "" {
		actor := listFilter{index: "actor", args: []any{f.Actor}, counter: auditActorCounter(f.Actor)}
		if len(lists) > 0 && actor.size(s) < actionTotal {
			lists = []listFilter{actor, lists[0]} // the narrower first
		} else {
			lists = append(lists, actor)
		}
	}
	if len(lists) == 0 {
		lists = []listFilter{{index: "id", counter: "console/audit"}}
	}
	out, total := filteredPage(s, tConsoleAudit, lists, p, func(e *AuditEntry) bool {
		return (f.Actor == "" || e.Actor == f.Actor) && strings.HasPrefix(e.Action, f.Action)
	})
	return copies(out), total
}

// mergeBySeq walks several walks of audit entries, each in sequence order
// (descending when reverse), as one in that order.
func mergeBySeq(its []memdb.ResultIterator, reverse bool) memdb.ResultIterator {
	m := &seqMerge{its: its, heads: make([]*AuditEntry, len(its)), reverse: reverse}
	for i, it := range its {
		m.heads[i], _ = it.Next().(*AuditEntry)
	}
	return m
}

type seqMerge struct {
	its     []memdb.ResultIterator
	heads   []*AuditEntry
	reverse bool
}

func (m *seqMerge) WatchCh() <-chan struct{} { return nil }

func (m *seqMerge) Next() any {
	best := -1
	for i, h := range m.heads {
		if h != nil && (best < 0 || (h.Seq > m.heads[best].Seq) == m.reverse) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	e := m.heads[best]
	m.heads[best], _ = m.its[best].Next().(*AuditEntry)
	return e
}

func copies[T any](in []*T) []*T {
	out := make([]*T, len(in))
	for i, v := range in {
		cp := *v
		out[i] = &cp
	}
	return out
}

// consoleSnapshot writes the console tables into a snapshot.
func consoleSnapshot(j *jsonWriter, s *Store) {
	array(j, "consoleLogins", true, s.iter(tConsoleLogins, "id", false), same[*LoginAttempt])
	array(j, "consoleSessions", true, s.iter(tConsoleSessions, "id", false), same[*ConsoleSession])
	array(j, "consoleAdmins", true, s.iter(tConsoleAdmins, "id", false), same[*LocalAdmin])
	array(j, "consoleAudit", true, s.iter(tConsoleAudit, "id", false), same[*AuditEntry])
	array(j, "consoleUsedStates", true, s.iter(tConsoleUsedStates, "id", false), same[*UsedLoginState])
}

// consoleRestore reads one console field of a snapshot; ok is false for a
// field that is not the console's.
func consoleRestore(name string, dec *jsonStream, s *Store) (ok bool, err error) {
	switch name {
	case "consoleLogins":
		return true, rows(dec, func(a *LoginAttempt) { s.put(tConsoleLogins, a); s.count("console/logins", 1) })
	case "consoleSessions":
		return true, rows(dec, func(ss *ConsoleSession) { s.put(tConsoleSessions, ss) })
	case "consoleAdmins":
		return true, rows(dec, func(a *LocalAdmin) { s.put(tConsoleAdmins, a) })
	case "consoleAudit":
		return true, rows(dec, s.putAudit)
	case "consoleUsedStates":
		return true, rows(dec, func(u *UsedLoginState) { s.put(tConsoleUsedStates, u); s.count("console/usedStates", 1) })
	}
	return false, nil
}
