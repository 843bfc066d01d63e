package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	// SignatureHeader carries Signature's value: "t=<unix seconds>,v1=<hex>[,v1=<hex>...]".
	SignatureHeader = "Partnerd-Signature"
	// EventIDHeader carries the event's id, the same for every delivery of the event.
	EventIDHeader = "Partnerd-Event-Id"
	// EventTypeHeader carries the event's type, e.g. "invoice.paid".
	EventTypeHeader = "Partnerd-Event-Type"
	// DeliveryHeader carries the delivery's key, the same for every retry of
	// a delivery: receivers de-duplicate by it.
	DeliveryHeader = "Partnerd-Delivery-Id"
)

// Errors returned by Verify; a caller tells them apart with errors.Is.
var (
	// ErrMalformedSignature means the signature header cannot be parsed:
	// not "k=v" items, no or several "t", a bad timestamp, no "v1", or a v1
	// that is not hex.
	ErrMalformedSignature = errors.New("webhook signature: malformed header")
	// ErrNoMatch means no v1 signature matches the body and the secret.
	ErrNoMatch = errors.New("webhook signature: no signature matches")
	// ErrTooOld means the signature is authentic but its timestamp is
	// further from now than the tolerance (in either direction): a replay,
	// or a clock too far off.
	ErrTooOld = errors.New("webhook signature: timestamp outside the tolerance")
)

// Sign returns the lowercase hex HMAC-SHA256, keyed with secret, of the
// signed payload: t in Unix seconds, a dot, and the body.
func Sign(secret string, t time.Time, body []byte) string {
	return hex.EncodeToString(mac(secret, t.Unix(), body))
}

// mac is Sign's raw HMAC for a timestamp in Unix seconds.
func mac(secret string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(strconv.FormatInt(unix, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Signature returns the SignatureHeader value for a body sent at t:
// "t=<unix seconds>,v1=<Sign(secret)>", with one v1 entry per secret, in
// order (the current secret and, during a rotation, its predecessor).
func Signature(t time.Time, body []byte, secrets ...string) string {
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(t.Unix(), 10))
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(Sign(s, t, body))
	}
	return b.String()
}

// Verify checks a SignatureHeader value the way a receiver does: the header
// must hold exactly one t and at least one v1 (items separated by commas,
// each "k=v"; other keys are ignored), one v1 must be the HMAC of the body
// with secret, and, unless tolerance is 0, t must be within tolerance of
// now. The error wraps ErrMalformedSignature, ErrNoMatch or ErrTooOld.
func Verify(header string, body []byte, secret string, tolerance time.Duration, now time.Time) error {
	var (
		unix  int64
		haveT bool
		sigs  [][]byte
	)
	for item := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fmt.Errorf("%w: item %q is not k=v", ErrMalformedSignature, item)
		}
		switch k {
		case "t":
			if haveT {
				return fmt.Errorf("%w: several timestamps", ErrMalformedSignature)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%w: timestamp %q is not an integer", ErrMalformedSignature, v)
			}
			unix, haveT = n, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return fmt.Errorf("%w: v1 is not hex", ErrMalformedSignature)
			}
			sigs = append(sigs, sig)
		}
	}
	switch {
	case !haveT:
		return fmt.Errorf("%w: no timestamp", ErrMalformedSignature)
	case len(sigs) == 0:
		return fmt.Errorf("%w: no v1 signature", ErrMalformedSignature)
	}

	want := mac(secret, unix, body)
	matched := false
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			matched = true
			break
		}
	}
	if !matched {
		return ErrNoMatch
	}
	if tolerance > 0 {
		// Sub saturates on absurd timestamps, so compare both bounds
		// rather than negating.
		if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
			return fmt.Errorf("%w: signed at %d, %s from now, tolerance %s", ErrTooOld, unix, d.Round(time.Second), tolerance)
		}
	}
	return nil
}
