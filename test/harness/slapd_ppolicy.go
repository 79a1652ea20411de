package harness

import (
	"fmt"
	"os"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// StartSLAPDWithPPolicy is StartSLAPD with OpenLDAP's password policy
// overlay loaded (moduleload ppolicy, overlay ppolicy), whose schema
// defines pwdAccountLockedTime: the mark ppolicy leaves on a locked
// account, which a search for the user (no bind) can read.
//
// slapd.conf is written by StartSLAPD; the server is stopped once, the
// two lines are added and it is started again on the same ports and
// database, so the fixture users stay.
func StartSLAPDWithPPolicy(dir string, users []User) (*SLAPD, error) {
	s, err := StartSLAPD(dir, users)
	if err != nil {
		return nil, err
	}
	s.Stop()
	b, err := os.ReadFile(s.conf)
	if err != nil {
		return nil, err
	}
	conf := string(b)
	for _, r := range []struct{ old, new string }{
		{"moduleload memberof\n", "moduleload memberof\nmoduleload ppolicy\n"},
		{"overlay memberof\n", "overlay ppolicy\noverlay memberof\n"},
	} {
		if !strings.Contains(conf, r.old) {
			return nil, fmt.Errorf("slapd.conf has no %q line to add ppolicy to", strings.TrimSpace(r.old))
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// LockAccount sets pwdAccountLockedTime on the user's entry as the
// rootdn. "000001010000Z" is ppolicy's value for an account locked until
// an administrator unlocks it. It needs StartSLAPDWithPPolicy.
func (s *SLAPD) LockAccount(uid string) error {
	c, err := s.admin()
	if err != nil {
		return err
	}
	defer c.Close()
	m := ldap.NewModifyRequest(User{UID: uid}.DN(), nil)
	m.Replace("pwdAccountLockedTime", []string{"000001010000Z"})
	if err := c.Modify(m); err != nil {
		return fmt.Errorf("lock %s: %w", uid, err)
	}
	return nil
}
