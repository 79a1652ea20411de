package voice

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Validator checks X-Twilio-Signature: HMAC-SHA1 under the auth token of
// the exact public URL and the sorted form parameters. internal/twilio
// implements it.
type Validator interface {
	Valid(url string, params map[string]string, signature string) bool
}

// Webhook is the handler Twilio posts the Gather result to, mounted at
// WebhookPath on admin_listen. A request must carry a valid signature
// for the public URL (else 403, nothing recorded) and name a live
// approval and its call; then # approves and any other key refuses.
func (v *Voice) Webhook(val Validator, log *slog.Logger) http.Handler {
	reply := func(w http.ResponseWriter, status int, text string) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		w.Write([]byte(twiml(say{Text: text})))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		token := strings.TrimPrefix(r.URL.Path, WebhookPath)
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if token == "" || strings.Contains(token, "/") || r.ParseForm() != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		params := make(map[string]string, len(r.PostForm))
		for k, vs := range r.PostForm {
			if len(vs) > 0 {
				params[k] = vs[0]
			}
		}
		if !val.Valid(v.actionURL(token), params, r.Header.Get("X-Twilio-Signature")) {
			log.Warn("Twilio webhook with a bad signature refused", "remote", r.RemoteAddr)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		ctx := r.Context()
		b, ok, err := v.o.KV.Get(ctx, tokenKey(token))
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		var rec record
		if !ok || json.Unmarshal(b, &rec) != nil || !time.Now().Before(rec.Expires) {
			log.Warn("Twilio webhook for no live approval", "call_sid", params["CallSid"])
			reply(w, http.StatusOK, "This sign-in request has expired. Goodbye.")
			return
		}
		sid, ok, err := v.o.KV.Get(ctx, sidKey(token))
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if ok && string(sid) != params["CallSid"] {
			log.Warn("Twilio webhook from another call refused", "call_sid", params["CallSid"])
			reply(w, http.StatusOK, "This sign-in request has expired. Goodbye.")
			return
		}
		result := "refused"
		if params["Digits"] == "#" {
			result = "approved"
		}
		// The first answer stands: a retried or second post changes nothing.
		first, err := v.o.KV.SetNX(ctx, resultKey(token), []byte(result), time.Until(rec.Expires))
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if !first {
			log.Warn("Twilio webhook for an approval already answered", "call_sid", params["CallSid"])
			reply(w, http.StatusOK, "This sign-in request has expired. Goodbye.")
			return
		}
		log.Info("sign-in by phone call", "user", rec.User, "result", result, "call_sid", params["CallSid"])
		if result == "approved" {
			reply(w, http.StatusOK, "Approved. Goodbye.")
			return
		}
		reply(w, http.StatusOK, "The sign-in was refused. Goodbye.")
	})
}
