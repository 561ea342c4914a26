package dashboard

import (
	"context"
	"net"
	"net/http"
	"strconv"

	"github.com/flashline/flashline/server/operatorauth"
	"github.com/flashline/flashline/server/store"
)

// OperatorStore is what the dashboard changes on an operator's behalf and reads of the
// operators' actions.
type OperatorStore interface {
	ResetDeviceBy(ctx context.Context, mac, actor, detail string) error
	Audit(ctx context.Context, limit int) ([]store.AuditEntry, error)
}

// noOperators is the guard of a dashboard given none: views open, no action possible.
func noOperators() *operatorauth.Guard {
	g, err := operatorauth.New(operatorauth.Options{})
	if err != nil {
		panic(err) // the empty configuration has nothing that can fail
	}
	return g
}

// registerOperators adds the login routes and the audit log's view.
func (d *Dashboard) registerOperators(mux *http.ServeMux, view func(http.Handler) http.Handler) {
	d.o.Operators.Register(mux)
	mux.Handle("GET /dashboard/api/audit", view(http.HandlerFunc(d.audit)))
}

// resetDetail is the audit log's note on where a dashboard reset came from.
func resetDetail(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return "dashboard, from " + ip
}

// audit answers the latest operator actions, newest first (?limit=, default 100, at most
// 1000).
func (d *Dashboard) audit(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			d.fail(w, r, http.StatusBadRequest, "limit "+strconv.Quote(v)+": want 1 to 1000")
			return
		}
		limit = n
	}
	log, err := d.o.Store.Audit(r.Context(), limit)
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	if log == nil {
		log = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, log)
}
