package portal

import (
	"bytes"
	"html/template"
	"net/http"
)

// pages are the templates under templates/, each drawn inside layout.html.
var pages = []string{"signin", "code", "first", "home", "totp", "recovery", "error"}

func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pages {
		t, err := template.New("layout.html").Funcs(template.FuncMap{"method": text.method}).
			ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// view is what every page is drawn from.
type view struct {
	Page   string
	User   string
	CSRF   string
	Notice string
	Prompt string
	D      map[string]any
}

// render draws a page; it is written only once drawn whole, so that an
// error never leaves half a page.
func (p *Portal) render(w http.ResponseWriter, name string, s *session, d map[string]any) {
	p.renderStatus(w, http.StatusOK, name, s, d)
}

func (p *Portal) renderStatus(w http.ResponseWriter, status int, name string, s *session, d map[string]any) {
	v := view{Page: name, D: d}
	if s != nil {
		v.User, v.CSRF, v.Notice, v.Prompt = s.User, s.CSRF, s.Notice, s.Prompt
		if s.Stage != stageIn && s.Stage != stageChallenge && s.Stage != stageFirst {
			v.User = ""
		}
	}
	var b bytes.Buffer
	if err := p.tmpl[name].Execute(&b, v); err != nil {
		p.o.Log.Error("portal: cannot draw a page", "page", name, "err", err)
		http.Error(w, text.unavailable, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// fail answers a refused request with a page that says why.
func (p *Portal) fail(w http.ResponseWriter, status int, msg string) {
	p.renderStatus(w, status, "error", nil, map[string]any{"Message": msg})
}

// unavailable answers when the state or enrolment store failed.
func (p *Portal) unavailable(w http.ResponseWriter, err error) {
	p.o.Log.Error("portal: a store is unavailable", "err", err)
	p.fail(w, http.StatusServiceUnavailable, text.unavailable)
}
