package problem

import "net/http"

// The table of problem codes: every code Bulwark answers, with its HTTP
// status and meaning. Codes are API: once published, a code keeps its
// meaning and status. New builds a problem from a code of this table and
// panics on any other (a programmer error that tests catch); the OpenAPI
// document's ProblemCode enum is checked against this table, description
// for description (internal/edge/openapi_test.go).

// Problem codes.
const (
	CodeMalformedJSON           = "malformed_json"
	CodeUnknownMember           = "unknown_member"
	CodeDuplicateMember         = "duplicate_member"
	CodeInvalidUTF8             = "invalid_utf8"
	CodeNULCharacter            = "nul_character"
	CodeNestingTooDeep          = "nesting_too_deep"
	CodeNumberOutOfRange        = "number_out_of_range"
	CodeBodyTooLarge            = "body_too_large"
	CodeUnsupportedMediaType    = "unsupported_media_type"
	CodeUnstorableValue         = "unstorable_value"
	CodeReadFailed              = "read_failed"
	CodeInvalidRequest          = "invalid_request"
	CodeInvalidAmount           = "invalid_amount"
	CodeInvalidAccount          = "invalid_account"
	CodeBatchTooLarge           = "batch_too_large"
	CodeDuplicateIdempotencyKey = "duplicate_idempotency_key"
	CodeIdempotencyConflict     = "idempotency_conflict"
	CodeAccountNotFound         = "account_not_found"
	CodeAccountExists           = "account_exists"
	CodeAssetMismatch           = "asset_mismatch"
	CodeInsufficientFunds       = "insufficient_funds"
	CodeCreditsExceedDebits     = "credits_exceed_debits"
	CodeAmountOverflow          = "amount_overflow"
	CodePendingNotFound         = "pending_not_found"
	CodePendingAlreadyPosted    = "pending_already_posted"
	CodePendingAlreadyVoided    = "pending_already_voided"
	CodePendingExpired          = "pending_expired"
	CodePostExceedsPending      = "post_exceeds_pending"
	CodeLinkedTransactionFailed = "linked_transaction_failed"
	CodeTransactionNotFound     = "transaction_not_found"
	CodeJournalEntryNotFound    = "journal_entry_not_found"
	CodeFeatureNotFound         = "feature_not_found"
	CodeTooManyFeatures         = "too_many_features"
	CodeEventLogUnavailable     = "event_log_unavailable"
	CodeOverloaded              = "overloaded"
	CodeHistoryArchived         = "history_archived"
	CodeShuttingDown            = "shutting_down"
	CodeCommitFailed            = "commit_failed"
	CodeUnauthenticated         = "unauthenticated"
	CodeAuthUnavailable         = "auth_unavailable"
	CodeTenantKeyRequired       = "tenant_key_required"
	CodeAdminKeyRequired        = "admin_key_required"
	CodeInvalidTenantId         = "invalid_tenant_id"
	CodeTenantExists            = "tenant_exists"
	CodeTenantNotFound          = "tenant_not_found"
	CodeKeyNotFound             = "key_not_found"
	CodeNotFound                = "not_found"
	CodeNotReady                = "not_ready"
	CodeInternal                = "internal"
	CodeQuotaExceeded           = "quota_exceeded"
	CodeUnknownSetting          = "unknown_setting"
	CodeInvalidSettingValue     = "invalid_setting_value"
	CodeSettingOutOfRange       = "setting_out_of_range"
	CodePresetNotFound          = "preset_not_found"
	CodePresetAlreadyApplied    = "preset_already_applied"
	CodePresetNotApplied        = "preset_not_applied"
	CodeTooManyOverrides        = "too_many_overrides"
	CodeControlStoreUnavailable = "control_store_unavailable"
	CodeInvalidDefinition       = "invalid_definition"
	CodeUnknownAggregation      = "unknown_aggregation"
	CodeWindowOutOfRange        = "window_out_of_range"
	CodeInvalidFilter           = "invalid_filter"
	CodeUnknownField            = "unknown_field"
	CodeFieldTypeMismatch       = "field_type_mismatch"
	CodeInvalidEvent            = "invalid_event"
	CodeConsoleSessionRequired  = "console_session_required"
	CodeCSRFTokenInvalid        = "csrf_token_invalid"
	CodeReasonRequired          = "reason_required"
	CodeExportNotFound          = "export_not_found"
	CodeExportFinished          = "export_finished"
	CodeTooManyExports          = "too_many_exports"
	CodeExportNotReady          = "export_not_ready"
	CodeExportExpired           = "export_expired"
	CodeDownloadLinkInvalid     = "download_link_invalid"
	CodeDownloadLinkExpired     = "download_link_expired"
)

// Def is one problem code.
type Def struct {
	Code   string
	Status int
	// Doc says when the code is answered (the OpenAPI enum description
	// after its "status: " prefix).
	Doc string
}

var defs = []Def{
	{CodeMalformedJSON, http.StatusBadRequest, "the body is not one valid JSON value of the expected shape (syntax, wrong type, trailing data, empty body)."},
	{CodeUnknownMember, http.StatusBadRequest, "a member name that is not part of the API; names are case-sensitive, so \"AMOUNT\" or \"Amount\" is unknown (pointer names it)."},
	{CodeDuplicateMember, http.StatusBadRequest, "an object names the same member twice, at any depth, metadata included (no last-one-wins)."},
	{CodeInvalidUTF8, http.StatusBadRequest, "the body is not valid UTF-8, or a string holds a lone UTF-16 surrogate escape such as \\ud800."},
	{CodeNULCharacter, http.StatusBadRequest, "a string (value or member name, metadata included) holds U+0000, which PostgreSQL cannot store."},
	{CodeNestingTooDeep, http.StatusBadRequest, "objects and arrays nested deeper than 32 levels."},
	{CodeNumberOutOfRange, http.StatusBadRequest, "a metadata number longer than 100 characters or with an exponent beyond ±1000 (PostgreSQL's numeric could not store it)."},
	{CodeBodyTooLarge, http.StatusRequestEntityTooLarge, "the body is over the route's limit (64 KiB; 8 MiB for batches; 256 KiB on the settings and preset routes)."},
	{CodeUnsupportedMediaType, http.StatusUnsupportedMediaType, "a body sent with a Content-Type other than application/json (or application/*+json), or with a charset other than UTF-8, or without a Content-Type."},
	{CodeUnstorableValue, http.StatusBadRequest, "the database refused a value of this request although it passed validation; the request was isolated from its commit batch, nothing of it was written, and the rest of the batch committed. Do not retry unchanged."},
	{CodeReadFailed, http.StatusServiceUnavailable, "a read failed for an unexpected reason (database unreachable); nothing was changed; Retry-After; retry."},
	{CodeInvalidRequest, http.StatusBadRequest, "a field breaks a validation rule (lengths, patterns, limits, missing pending_id, bad query parameter; on the settings routes: no key or over 256 keys in a change, a key given twice, reason or operator over 1024 bytes, bad limit or before)."},
	{CodeInvalidAmount, http.StatusBadRequest, "an amount is not a canonical decimal string, is above 2^128-1, or is zero where a positive amount is needed."},
	{CodeInvalidAccount, http.StatusBadRequest, "an account id does not match the id pattern (or, on creation, has an empty, \".\" or \"..\" segment between slashes), or a posting's source and destination are the same."},
	{CodeBatchTooLarge, http.StatusRequestEntityTooLarge, "more than 8190 transactions in a batch."},
	{CodeDuplicateIdempotencyKey, http.StatusBadRequest, "two transactions of one batch share an idempotency key."},
	{CodeIdempotencyConflict, http.StatusConflict, "the idempotency key was used for a different transaction (asynchronously also: journaled with a different body); index names the transaction when known."},
	{CodeAccountNotFound, http.StatusNotFound, "no such account for this tenant."},
	{CodeAccountExists, http.StatusConflict, "the account id is taken by an account with different attributes."},
	{CodeAssetMismatch, http.StatusUnprocessableEntity, "a posting's asset differs from the asset of its source or destination account."},
	{CodeInsufficientFunds, http.StatusUnprocessableEntity, "the write would break a debits_must_not_exceed_credits rule."},
	{CodeCreditsExceedDebits, http.StatusUnprocessableEntity, "the write would break a credits_must_not_exceed_debits rule."},
	{CodeAmountOverflow, http.StatusUnprocessableEntity, "a balance would exceed 2^128-1."},
	{CodePendingNotFound, http.StatusNotFound, "pending_id names no pending transaction of this tenant."},
	{CodePendingAlreadyPosted, http.StatusConflict, "the pending transaction was posted already."},
	{CodePendingAlreadyVoided, http.StatusConflict, "the pending transaction was voided already."},
	{CodePendingExpired, http.StatusConflict, "the pending transaction has expired."},
	{CodePostExceedsPending, http.StatusUnprocessableEntity, "a partial post's amount exceeds the pending amount."},
	{CodeLinkedTransactionFailed, http.StatusUnprocessableEntity, "another transaction of the same group failed (batch and journal results only)."},
	{CodeTransactionNotFound, http.StatusNotFound, "no such transaction for this tenant."},
	{CodeJournalEntryNotFound, http.StatusNotFound, "no such journal entry for this tenant."},
	{CodeFeatureNotFound, http.StatusNotFound, "no live feature of that name for this tenant."},
	{CodeTooManyFeatures, http.StatusConflict, "the tenant has features.max_definitions features already; delete one or raise the setting."},
	{CodeEventLogUnavailable, http.StatusServiceUnavailable, "the event log (Kafka) did not acknowledge the events; they may or may not be recorded; Retry-After; resend with the same event ids (each id is counted once)."},
	{CodeOverloaded, http.StatusServiceUnavailable, "the server sheds load; Retry-After; retry with the same idempotency keys. From admission control the request was not started (members stage normal, shedding or collapse, reason burst, threshold, capacity, collapse or hard_limit, priority); from the commit pipeline it is full (stage: pipeline)."},
	{CodeHistoryArchived, http.StatusGone, "an as-of balance read needs history that was archived (GET /v1/accounts/{id}/balance)."},
	{CodeShuttingDown, http.StatusServiceUnavailable, "this process is shutting down; Retry-After; retry with the same idempotency keys."},
	{CodeCommitFailed, http.StatusServiceUnavailable, "a database error; a write may or may not have committed; Retry-After; retry with the same idempotency keys."},
	{CodeUnauthenticated, http.StatusUnauthorized, "no API key, or an unknown or revoked one (WWW-Authenticate: Bearer)."},
	{CodeAuthUnavailable, http.StatusServiceUnavailable, "the key store is unreachable."},
	{CodeTenantKeyRequired, http.StatusForbidden, "the route needs a tenant API key, not the admin key."},
	{CodeAdminKeyRequired, http.StatusForbidden, "the route needs the admin key."},
	{CodeInvalidTenantId, http.StatusUnprocessableEntity, "the tenant id does not match ^[a-z0-9][a-z0-9_-]{0,62}$."},
	{CodeTenantExists, http.StatusConflict, "the tenant exists already."},
	{CodeTenantNotFound, http.StatusNotFound, "no such tenant (settings and preset routes: also an id that does not match the tenant id pattern, or an empty tenant)."},
	{CodeKeyNotFound, http.StatusNotFound, "no such unrevoked API key of this tenant."},
	{CodeNotFound, http.StatusNotFound, "no route for this method and path (answered after authentication), or a preset action other than apply and revert."},
	{CodeNotReady, http.StatusServiceUnavailable, "the database is unreachable (GET /readyz)."},
	{CodeInternal, http.StatusInternalServerError, "an unexpected server error."},
	{CodeQuotaExceeded, http.StatusTooManyRequests, "the tenant's request quota (quota.requests_per_sec, quota.burst; reason quota, with stage and priority) or the traffic quota of an entitled batch or crawler claim (quota.batch.*, quota.crawler.*; reason traffic_quota, stage quota) is spent; the request was not started; Retry-After."},
	{CodeUnknownSetting, http.StatusUnprocessableEntity, "the setting key is not in the registry (GET /v1/admin/settings/keys lists them)."},
	{CodeInvalidSettingValue, http.StatusUnprocessableEntity, "the value does not parse as the key's type, is null, or the key's validator rejected it (admission.rules: the rule parser)."},
	{CodeSettingOutOfRange, http.StatusUnprocessableEntity, "the value lies outside the key's [min, max]."},
	{CodePresetNotFound, http.StatusNotFound, "no preset of that name."},
	{CodePresetAlreadyApplied, http.StatusConflict, "the preset is applied to the tenant already; revert it first."},
	{CodePresetNotApplied, http.StatusConflict, "revert of a preset that is not applied to the tenant."},
	{CodeTooManyOverrides, http.StatusConflict, "the store holds 100,000 overrides; the change would add more."},
	{CodeControlStoreUnavailable, http.StatusServiceUnavailable, "the settings store (PostgreSQL) is unreachable; nothing was changed; no Retry-After."},
	{CodeInvalidDefinition, http.StatusBadRequest, "a feature definition breaks a rule not covered by a more specific code (name pattern, unknown source, missing or superfluous field, no window or more than 8, a window given twice; pointer names it)."},
	{CodeUnknownAggregation, http.StatusBadRequest, "a feature definition's aggregation is not one of count, sum, min, max, avg, distinct_count, last."},
	{CodeWindowOutOfRange, http.StatusBadRequest, "a feature window is not a whole number of minutes from 1m to 90d (forms: 10m, 2h, 7d)."},
	{CodeInvalidFilter, http.StatusBadRequest, "a feature filter does not parse, or is over 1024 bytes, 64 nodes or 16 levels deep (docs/features-filter.md)."},
	{CodeUnknownField, http.StatusBadRequest, "a feature definition names a field its source does not have (ledger: account, asset, amount, side, effect, transaction; events: names matching ^[a-z_][a-z0-9_]{0,62}$)."},
	{CodeFieldTypeMismatch, http.StatusBadRequest, "a feature definition uses a field with a value of the wrong type (sum or avg of a text field, a filter comparing an integer field with a string)."},
	{CodeInvalidEvent, http.StatusBadRequest, "an event breaks a rule (id 1..200 bytes, RFC 3339 time from 1970 to 2199, at most 64 fields named ^[a-z_][a-z0-9_]{0,62}$, values strings of at most 1024 bytes, integers within ±(2^128-1) or booleans; 1..1000 events per batch); pointer names the value."},
	{CodeConsoleSessionRequired, http.StatusUnauthorized, "console routes (/console/api/…): no console session cookie, or an expired or signed-out session; sign in again with the admin key."},
	{CodeCSRFTokenInvalid, http.StatusForbidden, "a console change (POST, PATCH, DELETE under /console/api/) without the session's X-CSRF-Token header, with a wrong one, or from another origin; nothing was changed."},
	{CodeReasonRequired, http.StatusUnprocessableEntity, "a console change of settings or presets without a reason (the audit trail records why); nothing was changed."},
	{CodeExportNotFound, http.StatusNotFound, "no such export for this tenant (also a malformed export id)."},
	{CodeExportFinished, http.StatusConflict, "cancel of an export that has finished (succeeded, failed, cancelled or expired); state names it."},
	{CodeTooManyExports, http.StatusTooManyRequests, "the tenant has exports.max_in_flight exports queued or running; nothing was queued; Retry-After."},
	{CodeExportNotReady, http.StatusConflict, "download of an export that has not succeeded (queued, running, failed or cancelled); state names it."},
	{CodeExportExpired, http.StatusGone, "download of an export whose file retention removed (exports.retention_hours)."},
	{CodeDownloadLinkInvalid, http.StatusForbidden, "the download link is malformed, tampered with, or not this tenant's: read the export's status for a fresh link."},
	{CodeDownloadLinkExpired, http.StatusGone, "the download link's validity (exports.link_ttl_seconds) is over: read the export's status for a fresh link."},
}

var byCode = func() map[string]Def {
	m := make(map[string]Def, len(defs))
	for _, d := range defs {
		if _, dup := m[d.Code]; dup {
			panic("problem: code " + d.Code + " defined twice")
		}
		m[d.Code] = d
	}
	return m
}()

// Lookup returns the definition of code.
func Lookup(code string) (Def, bool) {
	d, ok := byCode[code]
	return d, ok
}

// Defs returns every problem code, in table order.
func Defs() []Def { return append([]Def(nil), defs...) }

// Status returns code's HTTP status; an unknown code is a programmer error.
func Status(code string) int {
	d, ok := byCode[code]
	if !ok {
		panic("problem: unknown code " + code)
	}
	return d.Status
}
