package sms

import (
	"context"
	"strings"

	"github.com/mfabridge/mfabridge/factors"
)

// Messenger sends a text message; internal/twilio implements it.
type Messenger interface {
	SendSMS(ctx context.Context, to, body string) error
}

// Options configure the factor.
type Options struct {
	Messenger   Messenger
	Codes       *factors.SentCodes
	Limits      *factors.SendLimits
	Message     string // with {issuer} and {code}
	Issuer      string
	CountryCode string // for national numbers in the directory
}

// SMS is the text-message factor.
type SMS struct{ o Options }

// New returns the factor.
func New(o Options) *SMS { return &SMS{o: o} }

func (s *SMS) Method() factors.Method { return factors.SMS }

// number is the user's mobile number in E.164, or "".
func (s *SMS) number(u *factors.User) string {
	n, ok := factors.NormalisePhone(u.Mobile, s.o.CountryCode)
	if !ok {
		return ""
	}
	return n
}

func (s *SMS) Label(u *factors.User) string {
	return "a text message to " + factors.MaskPhone(s.number(u))
}

// Enrolled: a user with a usable mobile number can get a text message.
func (s *SMS) Enrolled(u *factors.User) bool { return s.number(u) != "" }

// CodeLength is the length of the codes sent.
func (s *SMS) CodeLength(*factors.User) int { return s.o.Codes.Length }

// Start sends a new code, within the limits.
func (s *SMS) Start(ctx context.Context, u *factors.User) (factors.Prompt, error) {
	to := s.number(u)
	if to == "" {
		return factors.Prompt{}, factors.ErrNotEnrolled
	}
	if err := s.o.Limits.Allow(ctx, factors.SMS, u.Name); err != nil {
		return factors.Prompt{}, err
	}
	code, err := s.o.Codes.Issue(ctx, factors.SMS, u.Name)
	if err != nil {
		return factors.Prompt{}, err
	}
	body := strings.NewReplacer("{issuer}", s.o.Issuer, "{code}", code).Replace(s.o.Message)
	if err := s.o.Messenger.SendSMS(ctx, to, body); err != nil {
		return factors.Prompt{}, err
	}
	return factors.Prompt{Text: "A text message with a code was sent to " + factors.MaskPhone(to) + "."}, nil
}

// Check verifies the code sent last.
func (s *SMS) Check(ctx context.Context, u *factors.User, answer string) error {
	return s.o.Codes.Check(ctx, factors.SMS, u.Name, answer)
}
