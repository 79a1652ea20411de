package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Every page of the portal, drawn in the browser: usable at 320 px wide
// (nothing wider than the screen), every field labelled, one heading,
// nothing loaded from anywhere but the portal. With MFABRIDGE_SCREENSHOTS
// set to a directory, each page is also saved there as a PNG (that is how
// docs/portal/ is made).
func TestPortalPages(t *testing.T) {
	t.Parallel()
	pb := startPortalBridge(t, portalPolicy, "")
	shots := os.Getenv("MFABRIDGE_SCREENSHOTS")
	u := newUser(t)
	out, _, code := mfabridge(t, pb.env(), "user", "invite", "--config", pb.ConfigFile, "--user", u.UID)
	invite := strings.Fields(out[strings.Index(out, ": ")+2:])[0]
	if code != 0 {
		t.Fatal(out)
	}
	p := pb.browser(t)
	check := func(name string) {
		t.Helper()
		p.mustBeAt(strings.TrimSuffix(name, "-codes"))
		for _, width := range []int64{1000, 320} {
			if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(width, 800)); err != nil {
				t.Fatal(err)
			}
			wide, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
			if err != nil {
				t.Fatal(err)
			}
			if wide > int(width) {
				t.Errorf("%s at %d px: the page is %d px wide", name, width, wide)
			}
			if shots != "" && (width == 1000 || name == "home") {
				png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
				if err != nil {
					t.Fatal(err)
				}
				file := name + ".png"
				if width == 320 {
					file = name + "-phone.png"
				}
				if err := os.WriteFile(filepath.Join(shots, file), png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		unlabelled, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](
			`[...document.querySelectorAll("input:not([type=hidden])")].filter(e => e.labels.length == 0).length`))
		if err != nil || unlabelled != 0 {
			t.Errorf("%s: %d fields without a label (%v)", name, unlabelled, err)
		}
		h1, _ := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("h1").length`))
		if h1 != 1 {
			t.Errorf("%s: %d main headings", name, h1)
		}
		foreign, _ := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](
			`performance.getEntriesByType("resource").map(e => e.name).filter(n => !n.startsWith(location.origin))`))
		if len(foreign) > 0 {
			t.Errorf("%s loads from elsewhere: %v", name, foreign)
		}
	}

	p.open("/signin")
	check("signin")
	p.signIn(u.UID, u.Password)
	check("first")
	p.fill("invite", invite)
	p.press("/first")
	check("home")
	p.press("/totp")
	check("totp")
	shown, _ := chromedp.Run(p.ctx, chromedp.Text(chromedp.ID("secret")))
	app := newTokenFromKey(t, shown)
	p.fill("code", app.code(0))
	p.press("/totp/confirm")
	p.press("/recovery")
	check("recovery-codes")
	p.open("/")
	p.press("/signout")
	p.signIn(u.UID, u.Password)
	check("code")
	p.answer(app.code(1))
	check("home")
	p.open("/")
	if err := chromedp.Do(p.ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector("input[name=csrf]").value = "x"`)); err != nil {
		t.Fatal(err)
	}
	p.press("/signout")
	check("error")
}
