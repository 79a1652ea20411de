package harness

import (
	"context"
	"fmt"
	"os"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's Chromium.
const ChromiumPath = "/usr/bin/chromium"

// NeedChromium says how to install the browser the portal's tests drive.
func NeedChromium() error {
	if _, err := os.Stat(ChromiumPath); err != nil {
		return fmt.Errorf("missing %s (package chromium); install it with: sudo scripts/deps (or: sudo apt-get install -y chromium)", ChromiumPath)
	}
	return nil
}

// Browser returns a chromedp context on a new headless Chromium with its
// own profile in dir, talking over a pipe (no port is opened), and with
// the background traffic a closed network refuses turned off.
func Browser(parent context.Context, dir string) (context.Context, context.CancelFunc, error) {
	if err := NeedChromium(); err != nil {
		return nil, nil, err
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(parent,
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1000, 800),
	)
	ctx, cancel := chromedp.NewContext(actx)
	return ctx, func() { cancel(); cancelAlloc() }, nil
}
