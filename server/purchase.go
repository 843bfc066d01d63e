package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/resolvers"
)

// purchaseAuthorizationsPath is the purchase guard for consoles that do not
// speak GraphQL.
const purchaseAuthorizationsPath = "/v1/purchase-authorizations"

// purchaseRequest is the JSON body of POST /v1/purchase-authorizations.
// listAmount is an exact decimal, as a string ("1234.50") or a JSON number
// (read from its text, never through a float).
type purchaseRequest struct {
	CustomerID  string      `json:"customerId"`
	BillingMode string      `json:"billingMode"`
	ListAmount  json.Number `json:"listAmount"`
}

// purchaseResponse is its answer: {"allowed":false,"reason":"BUDGET_EXCEEDED"}.
type purchaseResponse struct {
	Allowed bool    `json:"allowed"`
	Reason  *string `json:"reason"`
}

// PurchaseHandler serves POST /v1/purchase-authorizations: the same decision
// as the authorizePurchase mutation (guard.Service.Authorize), with the
// caller's bearer token. Errors are answered like the streaming ingestion's:
// the HTTP status of the code and a GraphQL-shaped errors body.
func PurchaseHandler(svc *guard.Service, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
			writeError(w, http.StatusUnsupportedMediaType, apperr.Validation, "send a JSON body (Content-Type: application/json)")
			return
		}
		var req purchaseRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, apperr.Validation, "the body is not a purchase authorization request: "+apperr.Clip(err.Error()))
			return
		}
		d, err := authorizeRequest(r, svc, req)
		if err != nil {
			writeIngestError(w, r, log, err)
			return
		}
		out := purchaseResponse{Allowed: d.Allowed}
		if !d.Allowed {
			out.Reason = &d.Reason
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(out)
	})
}

func authorizeRequest(r *http.Request, svc *guard.Service, req purchaseRequest) (guard.Decision, error) {
	if req.CustomerID == "" {
		return guard.Decision{}, apperr.Invalid("customerId", "is required")
	}
	id, err := ids.Decode(req.CustomerID, resolvers.TypeAccount)
	if err != nil {
		return guard.Decision{}, err
	}
	if req.ListAmount == "" {
		return guard.Decision{}, apperr.Invalid("listAmount", "is required")
	}
	amount, err := models.ParseDecimal(req.ListAmount.String())
	if err != nil {
		return guard.Decision{}, apperr.Invalid("listAmount", "%s", err.Error())
	}
	return svc.Authorize(r.Context(), id, models.BillingMode(req.BillingMode), amount)
}
