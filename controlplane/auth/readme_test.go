package auth

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestREADMEAccessTable keeps the README's role and scope table equal to
// the policy: a new action, or a changed rule, that the README does not
// show fails here, since operators choose roles and scopes from that table.
func TestREADMEAccessTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const header = "| action | what | API key scope | operator | supervisor | telecom_admin | platform_admin |"
	text := string(readme)
	start := strings.Index(text, header)
	if start < 0 {
		t.Fatalf("README has no access table starting %q", header)
	}
	roles := []string{RoleOperator, RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}
	seen := map[Action]bool{}
	for _, line := range strings.Split(text[start:], "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 7 {
			t.Fatalf("access table row has %d cells, want 7: %q", len(cells), line)
		}
		action := Action(strings.Trim(cells[0], "`"))
		rule, ok := policy[action]
		if !ok {
			t.Errorf("README lists action %q, which the policy does not have", action)
			continue
		}
		seen[action] = true
		var scopes []string
		if cells[2] != "never" {
			for _, s := range strings.Split(cells[2], " or ") {
				scopes = append(scopes, strings.Trim(s, "`"))
			}
		}
		if !slices.Equal(scopes, rule.scopes) {
			t.Errorf("%s: README scopes %v, policy %v", action, scopes, rule.scopes)
		}
		for i, role := range roles {
			readmeAllows := cells[3+i] == "✓"
			if cells[3+i] != "✓" && cells[3+i] != "–" {
				t.Errorf("%s/%s: cell %q is neither ✓ nor –", action, role, cells[3+i])
			}
			if policyAllows := slices.Contains(rule.roles, role); readmeAllows != policyAllows {
				t.Errorf("%s/%s: README says %v, policy %v", action, role, readmeAllows, policyAllows)
			}
		}
	}
	for _, a := range Actions {
		if !seen[a] {
			t.Errorf("action %q is missing from the README's access table", a)
		}
	}
}
