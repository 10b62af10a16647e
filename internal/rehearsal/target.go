package rehearsal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-ledger/bulwark/client"
)

// accountAsset of the run's accounts; payments move 1 minor unit.
const accountAsset = "LOAD"

// setupTimeout bounds each preflight and setup call.
const setupTimeout = 10 * time.Second

// target is the server under rehearsal, ready for load: a client per
// traffic claim and the accounts to use.
type target struct {
	admin    *client.Client              // nil without an admin key
	tenant   string                      // the run's tenant when created here
	keyID    string                      // the key created here, revoked by close
	load     map[string][]*client.Client // by traffic claim, one per key
	accounts []string                    // the same ids in every key's tenant
	hc       *http.Client
}

// open checks the URL and the keys and prepares the tenant, its key and
// its accounts. Every failure is ErrBadInput: nothing was sent yet.
func open(ctx context.Context, cfg *Config) (*target, error) {
	t := &target{load: map[string][]*client.Client{}}
	if err := ping(ctx, cfg.URL); err != nil {
		return nil, err
	}
	keys := cfg.Keys
	if cfg.AdminKey != "" {
		key, err := t.createTenant(ctx, cfg)
		if err != nil {
			return nil, errors.Join(err, t.close(ctx))
		}
		keys = []string{key}
	}
	for i, key := range keys {
		if err := t.createAccounts(ctx, cfg, key); err != nil {
			return nil, errors.Join(fmt.Errorf("key %d of %d: %w", i+1, len(keys), err), t.close(ctx))
		}
		if needsFeature(cfg.Mix) {
			if err := defineFeature(ctx, cfg, key); err != nil {
				return nil, errors.Join(fmt.Errorf("key %d of %d: %w", i+1, len(keys), err), t.close(ctx))
			}
		}
	}
	t.hc = &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.MaxInFlight,
		MaxIdleConnsPerHost: cfg.MaxInFlight,
		IdleConnTimeout:     90 * time.Second,
	}}
	for _, sh := range cfg.Mix {
		traffic := classes[sh.Class].traffic
		if t.load[traffic] != nil {
			continue
		}
		for _, key := range keys {
			c, err := client.New(cfg.URL, key, client.WithHTTPClient(t.hc), client.WithoutBatching(),
				client.WithClaims(client.Claims{Traffic: traffic}),
				client.WithRetry(1, time.Second), client.WithTimeout(cfg.RequestTimeout))
			if err != nil {
				return nil, errors.Join(badInput("%v", err), t.close(ctx))
			}
			t.load[traffic] = append(t.load[traffic], c)
		}
	}
	return t, nil
}

// ping refuses a URL that does not answer /healthz.
func ping(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/healthz", nil)
	if err != nil {
		return badInput("URL %s: %v", base, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return badInput("URL %s does not answer: %v", base, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return badInput("URL %s: /healthz answered %d; is it a Bulwark?", base, resp.StatusCode)
	}
	return nil
}

// createTenant creates the run's tenant and a key entitled to the batch
// and crawler claims, lifts its request quota and checks the preset.
func (t *target) createTenant(ctx context.Context, cfg *Config) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	admin, err := client.New(cfg.URL, cfg.AdminKey, client.WithoutBatching())
	if err != nil {
		return "", badInput("%v", err)
	}
	presets, err := admin.Presets(ctx)
	if err != nil {
		return "", badInput("admin key refused by %s: %v", cfg.URL, err)
	}
	if cfg.Preset != "" && !slices.ContainsFunc(presets, func(p client.Preset) bool { return p.Name == cfg.Preset }) {
		return "", badInput("unknown preset %q", cfg.Preset)
	}
	var raw [6]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := "load-" + hex.EncodeToString(raw[:])
	if _, err := admin.CreateTenant(ctx, id, "bulwark load "+time.Now().UTC().Format(time.RFC3339)); err != nil {
		return "", badInput("create tenant %s: %v", id, err)
	}
	t.admin, t.tenant = admin, id
	k, err := admin.CreateKey(ctx, id, client.KeyInput{TrafficTypes: []string{"batch", "crawler"}})
	if err != nil {
		return "", badInput("create key of %s: %v", id, err)
	}
	t.keyID = k.ID
	quota := strconv.Itoa(maxRateLimit)
	if _, err := admin.ChangeSettings(ctx, id, client.SettingsPatch{
		Set:    map[string]any{"quota.requests_per_sec": quota, "quota.burst": quota},
		Reason: "bulwark load: measure the server, not the default quota",
	}); err != nil {
		return "", badInput("lift the quota of %s: %v", id, err)
	}
	return k.Key, nil
}

// createAccounts creates (or finds) the run's accounts with key: this
// also checks that the key authenticates.
func (t *target) createAccounts(ctx context.Context, cfg *Config, key string) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	c, err := client.New(cfg.URL, key, client.WithoutBatching())
	if err != nil {
		return badInput("%v", err)
	}
	t.accounts = t.accounts[:0]
	for i := range cfg.Accounts {
		id := "load-" + strconv.Itoa(i)
		_, err := c.CreateAccount(ctx, client.AccountInput{ID: id, Asset: accountAsset, Rule: client.RuleNone})
		if errors.Is(err, client.ErrUnauthenticated) {
			return badInput("tenant key refused by %s: %v", cfg.URL, err)
		}
		if err != nil {
			return badInput("create account %s: %v", id, err)
		}
		t.accounts = append(t.accounts, id)
	}
	return nil
}

// loadFeature is the feature the features and evaluate classes read: a
// count of events per card over 10 minutes. loadCards bounds the cards the
// load spreads over.
const (
	loadFeature = "bulwark_load_card_count"
	loadCards   = 1000
)

// defineFeature defines loadFeature for key's tenant (defining it again
// changes nothing).
func defineFeature(ctx context.Context, cfg *Config, key string) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	c, err := client.New(cfg.URL, key, client.WithoutBatching())
	if err != nil {
		return badInput("%v", err)
	}
	defer c.Close()
	_, err = c.DefineFeature(ctx, client.FeatureDefinition{Name: loadFeature, Source: "events", Entity: "card",
		Aggregation: "count", Windows: []string{"10m"}})
	if err != nil {
		return badInput("define the feature %s: %v", loadFeature, err)
	}
	return nil
}

// applyPreset and revertPreset act on the run's tenant.
func (t *target) applyPreset(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	_, err := t.admin.ApplyPreset(ctx, name, client.PresetRequest{Tenant: t.tenant, Reason: "bulwark load rehearsal", Operator: "bulwark load"})
	if err != nil {
		return fmt.Errorf("apply preset %s to %s: %w", name, t.tenant, err)
	}
	return nil
}

func (t *target) revertPreset(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	_, err := t.admin.RevertPreset(ctx, name, client.PresetRequest{Tenant: t.tenant, Reason: "bulwark load rehearsal", Operator: "bulwark load"})
	if err != nil {
		return fmt.Errorf("revert preset %s on %s: %w", name, t.tenant, err)
	}
	return nil
}

// close revokes the key created for the run and closes the connections.
func (t *target) close(ctx context.Context) error {
	var err error
	if t.keyID != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
		defer cancel()
		if rerr := t.admin.RevokeKey(ctx, t.tenant, t.keyID); rerr != nil {
			err = fmt.Errorf("revoke the run's key %s: %w", t.keyID, rerr)
		}
	}
	for _, cs := range t.load {
		for _, c := range cs {
			c.Close()
		}
	}
	if t.hc != nil {
		t.hc.CloseIdleConnections()
	}
	return err
}
