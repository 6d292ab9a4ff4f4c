package webhooks

import "strings"

// Match reports whether any pattern of a subscription's `events` list selects
// event: "*" matches every event, a pattern ending in "*" matches by prefix
// ("recording-*", "session*"), any other pattern must equal the event. A "*"
// elsewhere in a pattern is literal. An empty list matches nothing: whether a
// subscription without events means "all events" is the caller's policy.
//
// Prefix semantics mean "recording-*" does not select
// "participant-recording-started".
func Match(patterns []string, event string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(event, prefix) {
				return true
			}
		} else if p == event {
			return true
		}
	}
	return false
}
