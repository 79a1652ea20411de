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
// from parallel goroutines, as concurrent logins do, on SQLite and on
// PostgreSQL (a cluster the package starts); and on PostgreSQL the cost
// of the change mark every lookup reads first (the price of a cache that
// is exact across instances).
//
//	go test -run - -bench Enrolment ./internal/store
func BenchmarkEnrolment(b *testing.B) {
	const n = 100_000
	users := make([]string, n)
	creds := make([]factors.Credential, n)
	for i := range users {
		users[i] = fmt.Sprintf("user%06d", i)
		creds[i] = totpCred(fmt.Sprintf("secret-of-user-%06d", i))
	}
	open := map[string]func(b *testing.B) (*Store, error){
		"sqlite":   func(b *testing.B) (*Store, error) { return Open(filepath.Join(b.TempDir(), "store.db"), key1) },
		"postgres": func(b *testing.B) (*Store, error) { return OpenPostgres(newPGDatabase(b), key1) },
	}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s, err := open[name](b)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.Import(context.Background(), users, creds, false); err != nil {
				b.Fatal(err)
			}
			b.Run("random-users", func(b *testing.B) {
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
			})
			b.Run("change-mark", func(b *testing.B) {
				b.SetParallelism(16)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						s.cache.mark(context.Background())
					}
				})
			})
		})
	}
}
