package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/httpapi"
)

const usersUsage = `Usage:
  jobcast users create [flags] NAME -role viewer|admin   create a user; its token is printed once
  jobcast users list [flags]                            the users (name, role, created)
  jobcast users revoke [flags] NAME                     revoke a user: its token and dashboard sessions stop working

A viewer reads (dashboard, GraphQL, metrics, alerts, experiments); an admin
also changes things (experiments, alert rules, silences, SQL, users).
It talks to a running server's /v1/users with the admin token. Flags:
`

var usersGroup = adminGroup{
	name:  "users",
	usage: usersUsage,
	args:  map[string]int{"create": 1, "list": 0, "revoke": 1},
	list:  "create, list or revoke",
}

func runUsers(ctx context.Context, args []string, env envLookup, stdout, stderr io.Writer) error {
	role := ""
	sub, f, pos, err := usersGroup.parse(args, stderr, func(sub string, fs *flag.FlagSet) {
		if sub == "create" {
			fs.StringVar(&role, "role", "", "the user's role: viewer or admin (required)")
		}
	})
	if err != nil {
		return err
	}
	if err := usersGroup.want(sub, pos, usersGroup.args[sub]); err != nil {
		return err
	}
	if sub == "create" {
		// Checked here too, so a typo costs no round trip.
		if err := jobcast.ValidateUserName(pos[0]); err != nil {
			return errors.New(jobcast.ErrorMessage(err))
		}
		if role == "" {
			return errors.New("users create needs -role viewer or -role admin")
		}
		if _, err := jobcast.ParseRole(role); err != nil {
			return errors.New(jobcast.ErrorMessage(err))
		}
	}
	c, err := f.client(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	switch sub {
	case "create":
		body, _ := json.Marshal(httpapi.CreateUserRequest{Name: pos[0], Role: role})
		data, err := expCall(ctx, c, http.MethodPost, "/v1/users", body)
		if err != nil {
			return err
		}
		if f.json {
			return printJSON(stdout, data)
		}
		var u httpapi.CreatedUser
		if err := json.Unmarshal(data, &u); err != nil || u.Token == "" {
			return fmt.Errorf("the server's answer is not a created user: %s", bytes.TrimSpace(data))
		}
		fmt.Fprintf(stdout, "Created user %s (%s). Its token is shown only this once (the server keeps only its hash):\n\n    %s\n\n"+
			"Sign in to the dashboard with it, or send it as Authorization: Bearer.\n", u.Name, u.Role, u.Token)
		return nil
	case "list":
		data, err := expCall(ctx, c, http.MethodGet, "/v1/users", nil)
		if err != nil || f.json {
			if err == nil {
				err = printJSON(stdout, data)
			}
			return err
		}
		var out struct {
			Users []jobcast.User `json:"users"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			return fmt.Errorf("the server's answer is not a user list: %w", err)
		}
		if len(out.Users) == 0 {
			fmt.Fprintln(stdout, "no users (only the admin token signs in); add one with jobcast users create NAME -role viewer")
			return nil
		}
		rows := make([][]string, 0, len(out.Users))
		for _, u := range out.Users {
			rows = append(rows, []string{u.Name, string(u.Role), u.CreatedAt.UTC().Format(time.RFC3339)})
		}
		return printTable(stdout, []string{"NAME", "ROLE", "CREATED"}, rows)
	default: // revoke
		data, err := expCall(ctx, c, http.MethodDelete, "/v1/users/"+url.PathEscape(pos[0]), nil)
		if err != nil {
			return err
		}
		if f.json {
			return printJSON(stdout, data)
		}
		fmt.Fprintf(stdout, "Revoked %s: its token and dashboard sessions stop working now on this node and within %s on the others.\n",
			pos[0], auth.DefaultUserCacheTTL)
		return nil
	}
}
