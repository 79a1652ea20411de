package radius

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// sourceWarnings logs the drops an operator must see (a wrong shared
// secret, a NAS missing from the client list) at warning level, at most
// once a minute per cause and source address, with the number of drops
// since the last line: a misconfigured NAS shows up at once at the
// default log level, and a flood still makes one line a minute.
type sourceWarnings struct {
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	seen map[warnKey]*warnState
}

type warnKey struct {
	cause string
	from  netip.Addr
}

type warnState struct {
	logged     time.Time // when the last line was written
	suppressed int       // drops since
}

// maxWarnSources bounds the sources remembered; past it, the sources
// not seen for longest are forgotten (a spoofed flood from every address
// cannot grow the map without bound).
const maxWarnSources = 4096

func newSourceWarnings(log *slog.Logger) *sourceWarnings {
	return &sourceWarnings{log: log, every: time.Minute, seen: map[warnKey]*warnState{}}
}

// note counts one drop of cause from from and logs msg when due, with
// the client's name when it is known.
func (w *sourceWarnings) note(now time.Time, cause string, from netip.Addr, client, msg string) {
	k := warnKey{cause, from}
	w.mu.Lock()
	st, ok := w.seen[k]
	if ok && now.Sub(st.logged) < w.every {
		st.suppressed++
		w.mu.Unlock()
		return
	}
	count := 1
	if ok {
		count += st.suppressed
		st.logged, st.suppressed = now, 0
	} else {
		if len(w.seen) >= maxWarnSources {
			w.forget(now)
		}
		w.seen[k] = &warnState{logged: now}
	}
	w.mu.Unlock()
	args := []any{"cause", cause, "from", from.String(), "dropped", count}
	if client != "" {
		args = append(args, "client", client)
	}
	if ok {
		args = append(args, "over", w.every.String())
	}
	w.log.Warn(msg, args...)
}

// forget drops the entries quiet for longest; under w.mu.
func (w *sourceWarnings) forget(now time.Time) {
	for k, st := range w.seen {
		if now.Sub(st.logged) >= w.every {
			delete(w.seen, k)
		}
	}
	for k := range w.seen {
		if len(w.seen) < maxWarnSources {
			break
		}
		delete(w.seen, k)
	}
}
