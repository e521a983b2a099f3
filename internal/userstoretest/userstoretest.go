// Package userstoretest is the conformance suite of jobcast.UserStore:
// the SQLite store (embedded) and the NATS KV store (cluster) both run it,
// so that users sign in and are revoked the same way on both.
package userstoretest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
)

// Open returns another handle on one backend's data: a restarted process
// on the same SQLite file, another node on the same NATS server. Handles
// are closed by the test's cleanup.
type Open func(t *testing.T) jobcast.UserStore

// Run runs the suite. newBackend returns an opener on fresh, empty data;
// it is called once per subtest.
func Run(t *testing.T, newBackend func(t *testing.T) Open) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"CreateGetList", testCreateGetList},
		{"Duplicate", testDuplicate},
		{"Delete", testDelete},
		{"ConcurrentCreate", testConcurrentCreate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBackend(t))
		})
	}
}

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func user(t *testing.T, name string, role jobcast.Role) (jobcast.User, string) {
	t.Helper()
	tok, hash, err := jobcast.NewUserToken()
	if err != nil {
		t.Fatal(err)
	}
	return jobcast.User{Name: name, Role: role, CreatedAt: t0.Add(time.Duration(len(name)) * time.Second), TokenHash: hash}, tok
}

func notFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, jobcast.ErrUserNotFound) {
		t.Errorf("%s: %v, want ErrUserNotFound", what, err)
	}
}

// testCreateGetList: what is created is found by name and by token hash,
// through another handle, hash included; the list is by name.
func testCreateGetList(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	if got, err := s.ListUsers(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store lists %+v %v", got, err)
	}
	bob, _ := user(t, "bob", jobcast.RoleAdmin)
	alice, aliceTok := user(t, "alice@example.com", jobcast.RoleViewer)
	for _, u := range []jobcast.User{bob, alice} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	other := open(t)
	got, err := other.ListUsers(ctx)
	if want := []jobcast.User{alice, bob}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("list %+v %v, want %+v", got, err, want)
	}
	u, err := other.GetUser(ctx, "bob")
	if err != nil || !reflect.DeepEqual(*u, bob) {
		t.Errorf("get bob: %+v %v", u, err)
	}
	u, err = other.UserByTokenHash(ctx, jobcast.HashUserToken(aliceTok))
	if err != nil || !reflect.DeepEqual(*u, alice) {
		t.Errorf("by hash: %+v %v", u, err)
	}
	_, err = other.GetUser(ctx, "carol")
	notFound(t, "get carol", err)
	_, err = other.GetUser(ctx, "Bob")
	notFound(t, "names are case-sensitive: Bob", err)
	_, err = other.UserByTokenHash(ctx, jobcast.HashUserToken("jcu_unknown"))
	notFound(t, "unknown hash", err)
	_, err = other.UserByTokenHash(ctx, "")
	notFound(t, "empty hash", err)
}

// testDuplicate: a name is taken once; the first user is unchanged.
func testDuplicate(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	a, aTok := user(t, "ops", jobcast.RoleViewer)
	if err := s.CreateUser(ctx, a); err != nil {
		t.Fatal(err)
	}
	b, bTok := user(t, "ops", jobcast.RoleAdmin)
	if err := open(t).CreateUser(ctx, b); !errors.Is(err, jobcast.ErrUserExists) {
		t.Fatalf("second ops: %v, want ErrUserExists", err)
	}
	if u, err := s.GetUser(ctx, "ops"); err != nil || u.Role != jobcast.RoleViewer || u.TokenHash != a.TokenHash {
		t.Errorf("ops after the refused create: %+v %v", u, err)
	}
	if _, err := s.UserByTokenHash(ctx, jobcast.HashUserToken(bTok)); !errors.Is(err, jobcast.ErrUserNotFound) {
		t.Errorf("the refused user's token: %v", err)
	}
	if _, err := s.UserByTokenHash(ctx, jobcast.HashUserToken(aTok)); err != nil {
		t.Errorf("the first user's token: %v", err)
	}
}

// testDelete: a deleted user is gone by name, by hash and from the list,
// for every handle; its name may be taken again with a new token, and the
// old token does not come back with it.
func testDelete(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	a, aTok := user(t, "temp", jobcast.RoleAdmin)
	keep, _ := user(t, "keep", jobcast.RoleViewer)
	for _, u := range []jobcast.User{a, keep} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := open(t).DeleteUser(ctx, "temp"); err != nil {
		t.Fatal(err)
	}
	notFound(t, "delete again", s.DeleteUser(ctx, "temp"))
	notFound(t, "delete never created", s.DeleteUser(ctx, "nobody"))
	_, err := s.GetUser(ctx, "temp")
	notFound(t, "get deleted", err)
	_, err = s.UserByTokenHash(ctx, jobcast.HashUserToken(aTok))
	notFound(t, "deleted user's token", err)
	if got, err := s.ListUsers(ctx); err != nil || len(got) != 1 || got[0].Name != "keep" {
		t.Errorf("list after delete %+v %v", got, err)
	}
	again, againTok := user(t, "temp", jobcast.RoleViewer)
	if err := s.CreateUser(ctx, again); err != nil {
		t.Fatalf("name taken again: %v", err)
	}
	_, err = s.UserByTokenHash(ctx, jobcast.HashUserToken(aTok))
	notFound(t, "old token after the name was taken again", err)
	if u, err := open(t).UserByTokenHash(ctx, jobcast.HashUserToken(againTok)); err != nil || u.Role != jobcast.RoleViewer {
		t.Errorf("new token: %+v %v", u, err)
	}
}

// testConcurrentCreate: of many handles creating one name at once, exactly
// one wins.
func testConcurrentCreate(t *testing.T, open Open) {
	ctx := context.Background()
	const n = 4
	stores := make([]jobcast.UserStore, n)
	for i := range stores {
		stores[i] = open(t)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range stores {
		u, _ := user(t, "race", jobcast.RoleViewer)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = stores[i].CreateUser(ctx, u)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, jobcast.ErrUserExists):
			t.Errorf("create: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d creates won, want 1", won)
	}
}
