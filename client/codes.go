package client

// This table mirrors the server's (internal/problem/codes.go), which the
// client may not import; TestSentinelsMatchServer keeps the two equal.

// Sentinel errors, one per problem code of the API. Match them with
// errors.Is: errors.Is(err, client.ErrInsufficientFunds). The *Error the
// calls return carries the code, status and detail.
var (
	// ErrMalformedJSON is malformed_json (400): the body is not one valid JSON value of the expected shape (syntax, wrong type, trailing data, empty body).
	ErrMalformedJSON error = &sentinel{code: "malformed_json", status: 400}
	// ErrUnknownMember is unknown_member (400): a member name that is not part of the API; names are case-sensitive, so "AMOUNT" or "Amount" is unknown (pointer names it).
	ErrUnknownMember error = &sentinel{code: "unknown_member", status: 400}
	// ErrDuplicateMember is duplicate_member (400): an object names the same member twice, at any depth, metadata included (no last-one-wins).
	ErrDuplicateMember error = &sentinel{code: "duplicate_member", status: 400}
	// ErrInvalidUTF8 is invalid_utf8 (400): the body is not valid UTF-8, or a string holds a lone UTF-16 surrogate escape such as \ud800.
	ErrInvalidUTF8 error = &sentinel{code: "invalid_utf8", status: 400}
	// ErrNULCharacter is nul_character (400): a string (value or member name, metadata included) holds U+0000, which PostgreSQL cannot store.
	ErrNULCharacter error = &sentinel{code: "nul_character", status: 400}
	// ErrNestingTooDeep is nesting_too_deep (400): objects and arrays nested deeper than 32 levels.
	ErrNestingTooDeep error = &sentinel{code: "nesting_too_deep", status: 400}
	// ErrNumberOutOfRange is number_out_of_range (400): a metadata number longer than 100 characters or with an exponent beyond ±1000 (PostgreSQL's numeric could not store it).
	ErrNumberOutOfRange error = &sentinel{code: "number_out_of_range", status: 400}
	// ErrBodyTooLarge is body_too_large (413): the body is over the route's limit (64 KiB; 8 MiB for batches; 256 KiB on the settings and preset routes).
	ErrBodyTooLarge error = &sentinel{code: "body_too_large", status: 413}
	// ErrUnsupportedMediaType is unsupported_media_type (415): a body sent with a Content-Type other than application/json (or application/*+json), or with a charset other than UTF-8, or without a Content-Type.
	ErrUnsupportedMediaType error = &sentinel{code: "unsupported_media_type", status: 415}
	// ErrUnstorableValue is unstorable_value (400): the database refused a value of this request although it passed validation; the request was isolated from its commit batch, nothing of it was written, and the rest of the batch committed. Do not retry unchanged.
	ErrUnstorableValue error = &sentinel{code: "unstorable_value", status: 400}
	// ErrReadFailed is read_failed (503): a read failed for an unexpected reason (database unreachable); nothing was changed; Retry-After; retry.
	ErrReadFailed error = &sentinel{code: "read_failed", status: 503}
	// ErrInvalidRequest is invalid_request (400): a field breaks a validation rule (lengths, patterns, limits, missing pending_id, bad query parameter; on the settings routes: no key or over 256 keys in a change, a key given twice, reason or operator over 1024 bytes, bad limit or before).
	ErrInvalidRequest error = &sentinel{code: "invalid_request", status: 400}
	// ErrInvalidAmount is invalid_amount (400): an amount is not a canonical decimal string, is above 2^128-1, or is zero where a positive amount is needed.
	ErrInvalidAmount error = &sentinel{code: "invalid_amount", status: 400}
	// ErrInvalidAccount is invalid_account (400): an account id does not match the id pattern (or, on creation, has an empty, "." or ".." segment between slashes), or a posting's source and destination are the same.
	ErrInvalidAccount error = &sentinel{code: "invalid_account", status: 400}
	// ErrBatchTooLarge is batch_too_large (413): more than 8190 transactions in a batch.
	ErrBatchTooLarge error = &sentinel{code: "batch_too_large", status: 413}
	// ErrDuplicateIdempotencyKey is duplicate_idempotency_key (400): two transactions of one batch share an idempotency key.
	ErrDuplicateIdempotencyKey error = &sentinel{code: "duplicate_idempotency_key", status: 400}
	// ErrIdempotencyConflict is idempotency_conflict (409): the idempotency key was used for a different transaction (asynchronously also: journaled with a different body); index names the transaction when known.
	ErrIdempotencyConflict error = &sentinel{code: "idempotency_conflict", status: 409}
	// ErrAccountNotFound is account_not_found (404): no such account for this tenant.
	ErrAccountNotFound error = &sentinel{code: "account_not_found", status: 404}
	// ErrAccountExists is account_exists (409): the account id is taken by an account with different attributes.
	ErrAccountExists error = &sentinel{code: "account_exists", status: 409}
	// ErrAssetMismatch is asset_mismatch (422): a posting's asset differs from the asset of its source or destination account.
	ErrAssetMismatch error = &sentinel{code: "asset_mismatch", status: 422}
	// ErrInsufficientFunds is insufficient_funds (422): the write would break a debits_must_not_exceed_credits rule.
	ErrInsufficientFunds error = &sentinel{code: "insufficient_funds", status: 422}
	// ErrCreditsExceedDebits is credits_exceed_debits (422): the write would break a credits_must_not_exceed_debits rule.
	ErrCreditsExceedDebits error = &sentinel{code: "credits_exceed_debits", status: 422}
	// ErrAmountOverflow is amount_overflow (422): a balance would exceed 2^128-1.
	ErrAmountOverflow error = &sentinel{code: "amount_overflow", status: 422}
	// ErrPendingNotFound is pending_not_found (404): pending_id names no pending transaction of this tenant.
	ErrPendingNotFound error = &sentinel{code: "pending_not_found", status: 404}
	// ErrPendingAlreadyPosted is pending_already_posted (409): the pending transaction was posted already.
	ErrPendingAlreadyPosted error = &sentinel{code: "pending_already_posted", status: 409}
	// ErrPendingAlreadyVoided is pending_already_voided (409): the pending transaction was voided already.
	ErrPendingAlreadyVoided error = &sentinel{code: "pending_already_voided", status: 409}
	// ErrPendingExpired is pending_expired (409): the pending transaction has expired.
	ErrPendingExpired error = &sentinel{code: "pending_expired", status: 409}
	// ErrPostExceedsPending is post_exceeds_pending (422): a partial post's amount exceeds the pending amount.
	ErrPostExceedsPending error = &sentinel{code: "post_exceeds_pending", status: 422}
	// ErrLinkedTransactionFailed is linked_transaction_failed (422): another transaction of the same group failed (batch and journal results only).
	ErrLinkedTransactionFailed error = &sentinel{code: "linked_transaction_failed", status: 422}
	// ErrTransactionNotFound is transaction_not_found (404): no such transaction for this tenant.
	ErrTransactionNotFound error = &sentinel{code: "transaction_not_found", status: 404}
	// ErrJournalEntryNotFound is journal_entry_not_found (404): no such journal entry for this tenant.
	ErrJournalEntryNotFound error = &sentinel{code: "journal_entry_not_found", status: 404}
	// ErrFeatureNotFound is feature_not_found (404): no live feature of that name for this tenant.
	ErrFeatureNotFound error = &sentinel{code: "feature_not_found", status: 404}
	// ErrTooManyFeatures is too_many_features (409): the tenant has features.max_definitions features already; delete one or raise the setting.
	ErrTooManyFeatures error = &sentinel{code: "too_many_features", status: 409}
	// ErrEventLogUnavailable is event_log_unavailable (503): the event log (Kafka) did not acknowledge the events; they may or may not be recorded; Retry-After; resend with the same event ids (each id is counted once).
	ErrEventLogUnavailable error = &sentinel{code: "event_log_unavailable", status: 503}
	// ErrOverloaded is overloaded (503): the server sheds load; Retry-After; retry with the same idempotency keys. From admission control the request was not started (members stage normal, shedding or collapse, reason burst, threshold, capacity, collapse or hard_limit, priority); from the commit pipeline it is full (stage: pipeline).
	ErrOverloaded error = &sentinel{code: "overloaded", status: 503}
	// ErrHistoryArchived is history_archived (410): an as-of balance read needs history that was archived (GET /v1/accounts/{id}/balance).
	ErrHistoryArchived error = &sentinel{code: "history_archived", status: 410}
	// ErrShuttingDown is shutting_down (503): this process is shutting down; Retry-After; retry with the same idempotency keys.
	ErrShuttingDown error = &sentinel{code: "shutting_down", status: 503}
	// ErrCommitFailed is commit_failed (503): a database error; a write may or may not have committed; Retry-After; retry with the same idempotency keys.
	ErrCommitFailed error = &sentinel{code: "commit_failed", status: 503}
	// ErrUnauthenticated is unauthenticated (401): no API key, or an unknown or revoked one (WWW-Authenticate: Bearer).
	ErrUnauthenticated error = &sentinel{code: "unauthenticated", status: 401}
	// ErrAuthUnavailable is auth_unavailable (503): the key store is unreachable.
	ErrAuthUnavailable error = &sentinel{code: "auth_unavailable", status: 503}
	// ErrTenantKeyRequired is tenant_key_required (403): the route needs a tenant API key, not the admin key.
	ErrTenantKeyRequired error = &sentinel{code: "tenant_key_required", status: 403}
	// ErrAdminKeyRequired is admin_key_required (403): the route needs the admin key.
	ErrAdminKeyRequired error = &sentinel{code: "admin_key_required", status: 403}
	// ErrInvalidTenantId is invalid_tenant_id (422): the tenant id does not match ^[a-z0-9][a-z0-9_-]{0,62}$.
	ErrInvalidTenantId error = &sentinel{code: "invalid_tenant_id", status: 422}
	// ErrTenantExists is tenant_exists (409): the tenant exists already.
	ErrTenantExists error = &sentinel{code: "tenant_exists", status: 409}
	// ErrTenantNotFound is tenant_not_found (404): no such tenant (settings and preset routes: also an id that does not match the tenant id pattern, or an empty tenant).
	ErrTenantNotFound error = &sentinel{code: "tenant_not_found", status: 404}
	// ErrKeyNotFound is key_not_found (404): no such unrevoked API key of this tenant.
	ErrKeyNotFound error = &sentinel{code: "key_not_found", status: 404}
	// ErrNotFound is not_found (404): no route for this method and path (answered after authentication), or a preset action other than apply and revert.
	ErrNotFound error = &sentinel{code: "not_found", status: 404}
	// ErrNotReady is not_ready (503): the database is unreachable (GET /readyz).
	ErrNotReady error = &sentinel{code: "not_ready", status: 503}
	// ErrInternal is internal (500): an unexpected server error.
	ErrInternal error = &sentinel{code: "internal", status: 500}
	// ErrQuotaExceeded is quota_exceeded (429): the tenant's request quota (quota.requests_per_sec, quota.burst; reason quota, with stage and priority) or the traffic quota of an entitled batch or crawler claim (quota.batch.*, quota.crawler.*; reason traffic_quota, stage quota) is spent; the request was not started; Retry-After.
	ErrQuotaExceeded error = &sentinel{code: "quota_exceeded", status: 429}
	// ErrUnknownSetting is unknown_setting (422): the setting key is not in the registry (GET /v1/admin/settings/keys lists them).
	ErrUnknownSetting error = &sentinel{code: "unknown_setting", status: 422}
	// ErrInvalidSettingValue is invalid_setting_value (422): the value does not parse as the key's type, is null, or the key's validator rejected it (admission.rules: the rule parser).
	ErrInvalidSettingValue error = &sentinel{code: "invalid_setting_value", status: 422}
	// ErrSettingOutOfRange is setting_out_of_range (422): the value lies outside the key's [min, max].
	ErrSettingOutOfRange error = &sentinel{code: "setting_out_of_range", status: 422}
	// ErrPresetNotFound is preset_not_found (404): no preset of that name.
	ErrPresetNotFound error = &sentinel{code: "preset_not_found", status: 404}
	// ErrPresetAlreadyApplied is preset_already_applied (409): the preset is applied to the tenant already; revert it first.
	ErrPresetAlreadyApplied error = &sentinel{code: "preset_already_applied", status: 409}
	// ErrPresetNotApplied is preset_not_applied (409): revert of a preset that is not applied to the tenant.
	ErrPresetNotApplied error = &sentinel{code: "preset_not_applied", status: 409}
	// ErrTooManyOverrides is too_many_overrides (409): the store holds 100,000 overrides; the change would add more.
	ErrTooManyOverrides error = &sentinel{code: "too_many_overrides", status: 409}
	// ErrControlStoreUnavailable is control_store_unavailable (503): the settings store (PostgreSQL) is unreachable; nothing was changed; no Retry-After.
	ErrControlStoreUnavailable error = &sentinel{code: "control_store_unavailable", status: 503}
	// ErrInvalidDefinition is invalid_definition (400): a feature definition breaks a rule not covered by a more specific code (name pattern, unknown source, missing or superfluous field, no window or more than 8, a window given twice; pointer names it).
	ErrInvalidDefinition error = &sentinel{code: "invalid_definition", status: 400}
	// ErrUnknownAggregation is unknown_aggregation (400): a feature definition's aggregation is not one of count, sum, min, max, avg, distinct_count, last.
	ErrUnknownAggregation error = &sentinel{code: "unknown_aggregation", status: 400}
	// ErrWindowOutOfRange is window_out_of_range (400): a feature window is not a whole number of minutes from 1m to 90d (forms: 10m, 2h, 7d).
	ErrWindowOutOfRange error = &sentinel{code: "window_out_of_range", status: 400}
	// ErrInvalidFilter is invalid_filter (400): a feature filter does not parse, or is over 1024 bytes, 64 nodes or 16 levels deep (docs/features-filter.md).
	ErrInvalidFilter error = &sentinel{code: "invalid_filter", status: 400}
	// ErrUnknownField is unknown_field (400): a feature definition names a field its source does not have (ledger: account, asset, amount, side, effect, transaction; events: names matching ^[a-z_][a-z0-9_]{0,62}$).
	ErrUnknownField error = &sentinel{code: "unknown_field", status: 400}
	// ErrFieldTypeMismatch is field_type_mismatch (400): a feature definition uses a field with a value of the wrong type (sum or avg of a text field, a filter comparing an integer field with a string).
	ErrFieldTypeMismatch error = &sentinel{code: "field_type_mismatch", status: 400}
	// ErrInvalidEvent is invalid_event (400): an event breaks a rule (id 1..200 bytes, RFC 3339 time from 1970 to 2199, at most 64 fields named ^[a-z_][a-z0-9_]{0,62}$, values strings of at most 1024 bytes, integers within ±(2^128-1) or booleans; 1..1000 events per batch); pointer names the value.
	ErrInvalidEvent error = &sentinel{code: "invalid_event", status: 400}
	// ErrConsoleSessionRequired is console_session_required (401): console routes (/console/api/…): no console session cookie, or an expired or signed-out session; sign in again with the admin key.
	ErrConsoleSessionRequired error = &sentinel{code: "console_session_required", status: 401}
	// ErrCSRFTokenInvalid is csrf_token_invalid (403): a console change (POST, PATCH, DELETE under /console/api/) without the session's X-CSRF-Token header, with a wrong one, or from another origin; nothing was changed.
	ErrCSRFTokenInvalid error = &sentinel{code: "csrf_token_invalid", status: 403}
	// ErrReasonRequired is reason_required (422): a console change of settings or presets without a reason (the audit trail records why); nothing was changed.
	ErrReasonRequired error = &sentinel{code: "reason_required", status: 422}
	// ErrExportNotFound is export_not_found (404): no such export for this tenant (also a malformed export id).
	ErrExportNotFound error = &sentinel{code: "export_not_found", status: 404}
	// ErrExportFinished is export_finished (409): cancel of an export that has finished (succeeded, failed, cancelled or expired); state names it.
	ErrExportFinished error = &sentinel{code: "export_finished", status: 409}
	// ErrTooManyExports is too_many_exports (429): the tenant has exports.max_in_flight exports queued or running; nothing was queued; Retry-After.
	ErrTooManyExports error = &sentinel{code: "too_many_exports", status: 429}
	// ErrExportNotReady is export_not_ready (409): download of an export that has not succeeded (queued, running, failed or cancelled); state names it.
	ErrExportNotReady error = &sentinel{code: "export_not_ready", status: 409}
	// ErrExportExpired is export_expired (410): download of an export whose file retention removed (exports.retention_hours).
	ErrExportExpired error = &sentinel{code: "export_expired", status: 410}
	// ErrDownloadLinkInvalid is download_link_invalid (403): the download link is malformed, tampered with, or not this tenant's: read the export's status for a fresh link.
	ErrDownloadLinkInvalid error = &sentinel{code: "download_link_invalid", status: 403}
	// ErrDownloadLinkExpired is download_link_expired (410): the download link's validity (exports.link_ttl_seconds) is over: read the export's status for a fresh link.
	ErrDownloadLinkExpired error = &sentinel{code: "download_link_expired", status: 410}
)

// sentinels lists every sentinel, in the server's table order.
var sentinels = []error{
	ErrMalformedJSON,
	ErrUnknownMember,
	ErrDuplicateMember,
	ErrInvalidUTF8,
	ErrNULCharacter,
	ErrNestingTooDeep,
	ErrNumberOutOfRange,
	ErrBodyTooLarge,
	ErrUnsupportedMediaType,
	ErrUnstorableValue,
	ErrReadFailed,
	ErrInvalidRequest,
	ErrInvalidAmount,
	ErrInvalidAccount,
	ErrBatchTooLarge,
	ErrDuplicateIdempotencyKey,
	ErrIdempotencyConflict,
	ErrAccountNotFound,
	ErrAccountExists,
	ErrAssetMismatch,
	ErrInsufficientFunds,
	ErrCreditsExceedDebits,
	ErrAmountOverflow,
	ErrPendingNotFound,
	ErrPendingAlreadyPosted,
	ErrPendingAlreadyVoided,
	ErrPendingExpired,
	ErrPostExceedsPending,
	ErrLinkedTransactionFailed,
	ErrTransactionNotFound,
	ErrJournalEntryNotFound,
	ErrFeatureNotFound,
	ErrTooManyFeatures,
	ErrEventLogUnavailable,
	ErrOverloaded,
	ErrHistoryArchived,
	ErrShuttingDown,
	ErrCommitFailed,
	ErrUnauthenticated,
	ErrAuthUnavailable,
	ErrTenantKeyRequired,
	ErrAdminKeyRequired,
	ErrInvalidTenantId,
	ErrTenantExists,
	ErrTenantNotFound,
	ErrKeyNotFound,
	ErrNotFound,
	ErrNotReady,
	ErrInternal,
	ErrQuotaExceeded,
	ErrUnknownSetting,
	ErrInvalidSettingValue,
	ErrSettingOutOfRange,
	ErrPresetNotFound,
	ErrPresetAlreadyApplied,
	ErrPresetNotApplied,
	ErrTooManyOverrides,
	ErrControlStoreUnavailable,
	ErrInvalidDefinition,
	ErrUnknownAggregation,
	ErrWindowOutOfRange,
	ErrInvalidFilter,
	ErrUnknownField,
	ErrFieldTypeMismatch,
	ErrInvalidEvent,
	ErrConsoleSessionRequired,
	ErrCSRFTokenInvalid,
	ErrReasonRequired,
	ErrExportNotFound,
	ErrExportFinished,
	ErrTooManyExports,
	ErrExportNotReady,
	ErrExportExpired,
	ErrDownloadLinkInvalid,
	ErrDownloadLinkExpired,
}
