package edgeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
)

// NewRequest builds a call to an internal route, in either direction (the
// agent to the control plane, the control plane to an edge): a POST of in
// as JSON, authenticated with the edge token. What an answer means differs
// per caller (one edge's contract statuses, or trying the next control
// node), so reading it stays with them.
func NewRequest(ctx context.Context, url, edgeToken string, in any) (*http.Request, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+edgeToken)
	return req, nil
}
