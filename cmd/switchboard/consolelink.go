package main

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// defaultLinkTTL is how long a console sign-in link (and the session it
// starts) lasts when --ttl is not given.
const defaultLinkTTL = time.Hour

// consoleLinkCommand writes a single-use sign-in link for the web console
// to the store and prints its URL: a supervisor or an admin gets into the
// console without anyone handling a JWT or an API key.
func consoleLinkCommand() *command {
	return adminCommand("console-link", "--roles R1,R2 [--enterprise N]", "print a single-use sign-in URL for the web console",
		`The link signs one browser in to the web console as an operator with the
given roles (of the enterprise, unless the roles include platform_admin),
once: the console exchanges it for a session cookie, and a second use is
refused. The link, and the session it starts, end --ttl after the link was
made (and the session never lasts longer than the server's
--console-session-ttl). Audit rows of what is done through it name the
operator --sub, by default the link's id (lnk_…), which this command prints.

  switchboard console-link --enterprise 0367 --roles supervisor --ttl 8h
  switchboard console-link --roles platform_admin --url https://cp.example.com

`+storeAbout, mustExist,
		func(fs *pflag.FlagSet) func([]string) (adminStep, error) {
			enterprise := fs.String("enterprise", "", "the enterprise `NUMBER` (not needed for platform_admin)")
			roles := fs.String("roles", "", "comma-separated `ROLES`: "+strings.Join(auth.Roles, ", "))
			ttl := fs.Duration("ttl", defaultLinkTTL, "how long the link, and the session it starts, last")
			sub := fs.String("sub", "", "operator `ID` the audit log names (default: the link's id)")
			base := fs.String("url", "http://"+controlplane.DefaultListen, "the console's address as browsers reach it, e.g. https://cp.example.com")
			completeWords(fs, "roles", auth.Roles...)
			return func(args []string) (adminStep, error) {
				rs := splitList(*roles)
				if err := errorsJoin(noArgs("console-link", args), mustNotBeEmpty("roles", *roles), checkLink(rs, *enterprise, *ttl, *base)); err != nil {
					return nil, err
				}
				return func(ctx context.Context, st *store.Store, out printer) error {
					l, token, err := st.CreateConsoleLink(ctx, *enterprise, *sub, rs, *ttl)
					if err != nil {
						return err
					}
					link := strings.TrimRight(*base, "/") + "/#link=" + token
					who := "the platform"
					if l.EnterpriseNumber != "" {
						who = "enterprise " + l.EnterpriseNumber
					}
					return out.print(map[string]any{"url": link, "id": l.ID, "subject": l.Subject, "enterprise": l.EnterpriseNumber,
						"roles": l.Roles, "expires_at": l.ExpiresAt},
						"Sign-in link %s for %s as %s (operator %s), single use, valid until %s:\n\n%s\n",
						l.ID, who, strings.Join(l.Roles, ", "), l.Subject, l.ExpiresAt.Format(time.RFC3339), link)
				}, nil
			}
		})
}

// checkLink refuses, before the store is opened, a link that could not
// sign anyone in.
func checkLink(roles []string, enterprise string, ttl time.Duration, base string) error {
	for _, r := range roles {
		if !slices.Contains(auth.Roles, r) {
			return usagef("console-link: unknown role %q (want %s)", r, strings.Join(auth.Roles, ", "))
		}
	}
	if enterprise == "" && !slices.Contains(roles, auth.RolePlatformAdmin) {
		return usagef("console-link: --enterprise is required unless the roles include %s", auth.RolePlatformAdmin)
	}
	if ttl <= 0 {
		return usagef("console-link: --ttl must be positive, got %v", ttl)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("console-link: --url must be an http:// or https:// address, got %q", base)
	}
	return nil
}

// consoleLinkLine is how the demo prints a console-link command.
func consoleLinkLine(self, dsn, base, enterprise, roles string) string {
	s := self + " console-link --db " + dsn + " --url " + base
	if enterprise != "" {
		s += " --enterprise " + enterprise
	}
	return s + " --roles " + roles + " --ttl 8h"
}
