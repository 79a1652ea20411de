package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
)

// totpPeriod is the bridge's default factors.totp.period.
const totpPeriod = 30

// benchUser is a directory user; code users also hold a TOTP credential.
type benchUser struct {
	UID, Password string
	Cred          factors.Credential
}

// allocator hands out code users so that each is used at most once per
// TOTP time step: the bridge's replay guard accepts each user's step once.
// A user handed out in step s answers with the code of step s; the
// bridge accepts it one step late too (skew 1), and the same user handed
// out again in step s+1 answers with the code of s+1, another guard key.
// One allocator serves every code phase, so phases never share a step's
// user.
type allocator struct {
	mu   sync.Mutex
	n    int
	step int64
	next int
}

func newAllocator(n int) *allocator { return &allocator{n: n} }

// get returns a user index and its time step, waiting for the next step
// when this one's users are used up; ok is false when ctx ends first.
func (a *allocator) get(ctx context.Context, waits *int64) (idx int, step int64, ok bool) {
	for {
		now := time.Now()
		step := now.Unix() / totpPeriod
		a.mu.Lock()
		if step > a.step {
			a.step, a.next = step, 0
		}
		if a.next < a.n && step == a.step {
			i := a.next
			a.next++
			a.mu.Unlock()
			return i, step, true
		}
		a.mu.Unlock()
		*waits++
		wake := time.Unix((step+1)*totpPeriod, 0).Add(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			return 0, 0, false
		case <-time.After(time.Until(wake)):
		}
	}
}

// challengeOp is a full challenge flow: the password, Access-Challenge
// with a State, the TOTP code with that State, Access-Accept.
func challengeOp(users []benchUser, a *allocator) op {
	return func(ctx context.Context, c *client, s *stats) (bool, time.Time) {
		i, step, ok := a.get(ctx, &s.waits)
		if !ok {
			return false, time.Time{}
		}
		began := time.Now()
		u := users[i]
		p, err := c.request(u.UID, u.Password, nil)
		if err != nil {
			s.fail(err)
			return false, began
		}
		code, resp, err := c.exchange(p, true)
		if err != nil {
			s.fail(err)
			return false, began
		}
		if code != radius.CodeAccessChallenge {
			s.count(code)
			return false, began
		}
		s.challenge++
		st := rfc2865.State_Get(resp)
		p, err = c.request(u.UID, otp.Generate(u.Cred, uint64(step)), st)
		if err != nil {
			s.fail(err)
			return false, began
		}
		code, _, err = c.exchange(p, false)
		if err != nil {
			s.fail(err)
			return false, began
		}
		s.count(code)
		return code == radius.CodeAccessAccept, began
	}
}

// appendOp is an append-mode login: the password followed by the code in
// one Access-Request.
func appendOp(users []benchUser, a *allocator) op {
	return func(ctx context.Context, c *client, s *stats) (bool, time.Time) {
		i, step, ok := a.get(ctx, &s.waits)
		if !ok {
			return false, time.Time{}
		}
		began := time.Now()
		u := users[i]
		p, err := c.request(u.UID, u.Password+otp.Generate(u.Cred, uint64(step)), nil)
		if err != nil {
			s.fail(err)
			return false, began
		}
		code, _, err := c.exchange(p, false)
		if err != nil {
			s.fail(err)
			return false, began
		}
		s.count(code)
		return code == radius.CodeAccessAccept, began
	}
}

// openSessionOp sends the password of the next user and wants
// Access-Challenge, which it never answers: an open session. Once limit
// requests have been handed out it calls done, which ends the step.
func openSessionOp(users []benchUser, limit int, done func()) op {
	var seq atomic.Int64
	return func(ctx context.Context, c *client, s *stats) (bool, time.Time) {
		var began time.Time
		n := seq.Add(1) - 1
		if n >= int64(limit) {
			done()
			return false, began
		}
		u := users[n%int64(len(users))]
		p, err := c.request(u.UID, u.Password, nil)
		if err != nil {
			s.fail(err)
			return false, began
		}
		code, _, err := c.exchange(p, false)
		if err != nil {
			s.fail(err)
			return false, began
		}
		s.count(code)
		return code == radius.CodeAccessChallenge, began
	}
}
