package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/mfabridge/mfabridge/factors"
)

// BenchmarkEnrolment reads the enrolment of random users out of 100,000,
// from parallel goroutines, as concurrent logins do.
//
//	go test -run - -bench Enrolment ./internal/store
func BenchmarkEnrolment(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "store.db")
	s, err := Open(path, key1)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	users := make([]string, n)
	creds := make([]factors.Credential, n)
	for i := range users {
		users[i] = fmt.Sprintf("user%06d", i)
		creds[i] = totpCred(fmt.Sprintf("secret-of-user-%06d", i))
	}
	if err := s.Import(context.Background(), users, creds, false); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e, err := s.Enrolment(context.Background(), users[rand.IntN(n)])
			if err != nil || len(e.Credentials) != 1 {
				b.Errorf("enrolment: %v, %d credentials", err, len(e.Credentials))
				return
			}
		}
	})
}
