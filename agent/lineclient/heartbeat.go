package lineclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/flashline/flashline/protocol"
)

// Heartbeat tells the server the run's device is still there (protocol.PathHeartbeat).
// hb.Secret, the run's secret, goes in the Authorization header.
func (c *Client) Heartbeat(ctx context.Context, hb protocol.Heartbeat) error {
	body, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	u := c.base.JoinPath(fmt.Sprintf(protocol.PathHeartbeat, url.PathEscape(hb.RunID)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if hb.Secret != "" {
		req.Header.Set("Authorization", protocol.BearerHeader(hb.Secret))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("heartbeat: %w", statusError(resp))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return nil
}
