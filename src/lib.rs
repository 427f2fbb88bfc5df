//! lameduck: an HTTP server on raw hyper 1.x that shuts down gracefully,
//! written to be read.
//!
//! Where the docs say "the article", they mean the article this project
//! started from: a walk through graceful shutdown of Go's `http.Server`
//! (`Shutdown`, `RegisterOnShutdown`, a failing health check, a drain
//! delay, a `closing` channel, a background `runCleaner`). Go names from it
//! are given beside their Rust counterparts: see [From Go to
//! Rust](#from-go-to-rust) below.
//!
//! # The shutdown story
//!
//! A SIGTERM arrives ([`process::signals`] turns it into a token). The
//! server enters the **lame-duck** phase: `/healthz` starts answering 503 so
//! load balancers stop sending traffic, the on-shutdown hooks fire, and for
//! `drain_delay` everything else carries on (or less: it ends once every
//! health checker has seen the 503, [`health_checkers`]). Then the
//! **drain**: the listener is closed so new connections are refused, every
//! connection is told to finish (HTTP/1 responses carry `Connection:
//! close`, keep-alive connections close once idle, after a short grace if
//! they were just used so that a client's next request is not cut off;
//! HTTP/2 gets GOAWAY), event streams send a last `shutdown` event, long
//! polls answer at once, WebSockets get a Close frame and the drain waits
//! for their client's, and background workers are cancelled. The server waits — on events, not a
//! polling loop — until all of it is done, or until `shutdown_timeout`. If
//! the deadline comes first, requests still waiting for an answer get
//! `503` + `Retry-After`, and after a short grace the rest is aborted; a
//! second signal aborts at once. Finally one log line, the
//! [`ShutdownReport`], says what happened, and the exit code says whether
//! anything was forced.
//!
//! Go's `http.Server` gives you `Shutdown`, `Close` and `RegisterOnShutdown`
//! and leaves the rest to you. Here every step is code you can read.
//!
//! # Layout
//!
//! The folders follow the signal. One SIGTERM, from the signal to the exit
//! code, is six files:
//!
//! 1. [`process::signals`] (`src/process/signals.rs`): SIGTERM/SIGINT/SIGHUP
//!    → triggers. The only module that knows about OS signals.
//! 2. `server` (`src/server/mod.rs`): [`Server::run`], the seven steps of
//!    the shutdown, top to bottom — start here.
//! 3. `shutdown` (`src/shutdown/mod.rs`): [`ShutdownState`], the phase and
//!    the tokens of the shutdown, with one owner; the order of the drain is
//!    written there.
//! 4. `server::drain` (`src/server/drain.rs`): waiting for what still runs
//!    (connections, HTTP/2 streams, writes, workers), and forcing it.
//! 5. `server::report` (`src/server/report.rs`): the [`ShutdownReport`] and
//!    the exit code.
//! 6. `src/main.rs`: the binary, which exits with that code.
//!
//! What the drain waits for, and everything around it, by folder:
//!
//! - `server`: also `accept_loop` (accept, reap, stop when told),
//!   `accept_errors` (classified, with back-off), `hooks` (on-shutdown
//!   callbacks, `RegisterOnShutdown`), `tally` (how the waited-for tasks
//!   ended), `timeline` (when each phase began) and `when_woken` (the
//!   accept loop's trigger, polled only when it wakes the task, not at
//!   every accept; the same for an HTTP/2 connection's timers and a hub
//!   session's socket).
//! - `shutdown`: also `phase` (the phases as a small state machine,
//!   [`Phase`]), [`health_checkers`] (`--drain-checks`), `spread` (the
//!   drain's goodbyes over a window, `--drain-spread`), `stop` (why the
//!   server stops, [`Stop`]) and `token_wait` (`TokenWait`: waiting on a
//!   shutdown token for one relaxed load per poll).
//! - `conn` (`src/conn/mod.rs`): one connection, from the protocol sniff to
//!   the close, told of the drain by the `closing` token. Beside it: `io`
//!   (the connection's IO as hyper sees it), `limit` (`--max-connections`),
//!   `write_stall` (a peer that stops reading is cut off),
//!   `lingering_close` (no reset destroys a response), `http1_deadlines`
//!   (one lazy timer for Go's `ReadHeaderTimeout` + `IdleTimeout`),
//!   `keepalive_grace` (the keep-alive race at the drain), `h2_idle` (Go's
//!   `IdleTimeout` for HTTP/2, and GOAWAY) and `executor` (where HTTP/2
//!   stream tasks run, so a forced close reaches them), and `max_age`
//!   (`--max-connection-age`: connections age out, jittered).
//! - `http1_state`: what an HTTP/1 connection is doing (`Activity`: reading
//!   a head, busy, idle) and since when, one store per step.
//! - [`process`]: also [`process::listener`] (the listening socket,
//!   inherited or built with socket2) and [`process::notify`] (telling
//!   systemd: ready, reloading, stopping).
//! - [`upgrade`]: SIGHUP → a new process on the same socket, then the old
//!   one drains (start, ready, exit).
//! - `service`: routing and handlers; how cancellation reaches work; a
//!   download that outlasts its server and is resumed on the next one
//!   (`service::download`); the `Idempotency-Key` header that makes a
//!   write safe to retry (`service::idempotency_key`).
//! - [`long_lived`]: the connections that outlive any deadline (event
//!   stream, long poll, download, WebSocket), how each is told to end and
//!   resumes after a restart; the items [`long_lived::feed`] the hub and
//!   the long poll read; and [`long_lived::sockets`], the registry that
//!   tracks upgraded connections, which hyper no longer does.
//! - [`store`]: the item store; every call takes a cancellation token.
//!   SQLite, PostgreSQL or memory; what survives what; [`store::once`],
//!   a write and its idempotency key's response in one transaction.
//! - [`cleaner`]: the background worker (the article's `runCleaner`).
//! - `app`, `config`, [`cli`], `metrics`, `logging` (in the binary): the
//!   shared state, the settings, the command line that fills them, the
//!   counters for `/metrics`, and the log set-up.
//! - `fuzzing`, `testing`: the fuzz targets' entry points, also replayed by
//!   `cargo test`; the HTTP/1 response reader, the load generator and the
//!   real binary as a process, which the tests, the fuzz checker and the
//!   benches share. They are the test
//!   harness, built only with the `test-harness` feature (`cargo test`,
//!   `cargo bench` and the fuzz crate turn it on).
//!
//! Modules shown without a link are internal: read them with
//! `cargo doc --document-private-items`, or in the source.
//!
//! # From Go to Rust
//!
//! | Go (the article) | lameduck | proven by |
//! |---|---|---|
//! | `server.Shutdown(ctx)` | [`Server::run`], steps 3–4: drop the listener, cancel `closing` (`ShutdownState::begin_drain`), `server::drain::InFlight::drain`, woken once the last connection has ended (`ConnLimit::none_open`) rather than polling | `tests/shutdown.rs`: `in_flight_request_completes_with_connection_close`, `new_connections_are_refused_after_the_drain_delay`, `a_thousand_idle_keep_alive_connections_do_not_delay_the_exit` |
//! | `context.WithTimeout(.., 15*time.Second)` for `Shutdown` | `--shutdown-timeout`; the deadline branch of `InFlight::drain`; past it a close waits for the peer's acknowledgement, not its FIN (`conn::lingering_close`, `Close::OnceAcked`) | `the_deadline_answers_a_stuck_request_503_and_exits_1`; `tests/signals_and_exit_codes.rs`: `the_deadline_forces_the_close_with_code_1`, `the_exit_follows_the_acknowledged_503_not_the_force_grace`, `the_exit_follows_the_acknowledged_503_over_http2_too`, `a_peer_that_stopped_reading_holds_the_exit_for_the_force_grace_only` |
//! | `server.Close()` | step 5: `InFlight::force`, `InFlight::abort_all` (`JoinSet::abort_all`), `ShutdownState::abort_everything` (the stream executor's token, `conn::executor`) | `a_second_trigger_forces_the_close_at_once`; `tests/http2.rs`: `a_forced_close_stops_h2_stream_tasks`; `tests/signals_and_exit_codes.rs`: `a_second_signal_exits_promptly_with_code_1` |
//! | `srv.RegisterOnShutdown(f)` | [`Server::on_shutdown`], `ShutdownHooks::fire` (`server::hooks`) | `hooks_run_once_each_in_order_at_the_first_trigger_past_a_panic` |
//! | `store.List(r.Context())` | the handler future dropped by hyper + the `request_token()` drop guard (`service`) + [`store::Store`] methods taking a `CancellationToken` | `tests/routes_and_errors.rs`: `a_client_leaving_cancels_the_work_it_started`; `tests/storage.rs`: `a_client_leaving_mid_search_interrupts_the_statement_within_100ms`, `the_shutdown_deadline_interrupts_a_running_search` |
//! | `signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)` | [`process::signals::install`] → [`process::signals::Triggers`] `{ shutdown, force }` | `tests/signals_and_exit_codes.rs`: `sigterm_drains_in_flight_work_and_exits_0`, `sigint_also_shuts_down_gracefully` |
//! | `ReadTimeout` / `ReadHeaderTimeout` | `--header-read-timeout`: `Http1Deadlines` (`conn::http1_deadlines`), from the activity in `http1_state`, and the sniff deadline (`conn`); the body part: the `read_body` deadline → 408 (`service::items`) | `tests/limits.rs`: `an_unfinished_request_head_is_cut_at_the_header_timeout`, `a_silent_connection_is_cut_at_the_header_timeout`, `a_body_not_received_in_time_gets_408` |
//! | `WriteTimeout` | `--request-timeout`: `guarded` (`service`) for the handler, `WriteStall` (`conn::write_stall`) for a peer that stops reading, `conn::h2_stall` for an HTTP/2 stream whose window stays shut | `a_handler_past_the_request_timeout_gets_503_and_its_work_stops`, `an_event_stream_outlives_the_request_timeout`, `a_throttled_download_outlives_the_request_timeout`; `tests/hostile.rs`: `a_client_that_never_reads_is_cut_off_after_the_write_stalls`; `tests/floods.rs`: `streams_whose_window_stays_shut_are_reset_at_the_write_stall_limit` |
//! | `IdleTimeout` | `--idle-timeout`: `Http1Deadlines` for HTTP/1; `StreamCount::idle_for` and GOAWAY (`conn::h2_idle`) for HTTP/2 | `an_idle_keep_alive_connection_is_closed_at_the_idle_timeout_not_the_header_timeout`, `a_second_head_started_but_not_finished_is_cut_at_the_header_timeout`; `tests/http2.rs`: `an_idle_h2c_connection_gets_goaway_then_is_closed_at_the_idle_timeout`, `an_idle_h2c_connection_that_ignores_goaway_is_closed_a_second_later` |
//! | `HEAD` and `OPTIONS *`, answered by `net/http` and the `ServeMux` | `Reply::finish` and `head::without_body`; the `Allow` lists and `respond::unhandled_method` (`service`) | `tests/http_semantics.rs`: `head_over_h2c_answers_like_get_without_a_data_byte`, `head_over_http1_answers_like_get_without_a_body`, `options_star_lists_the_servers_methods` |
//! | (none: Go closes idle keep-alive connections at once, racing the client's next request) | `--keepalive-grace`: `keepalive_grace::close_at`, applied by `Http1Deadlines`, and `last_if_draining` (`service`); a close after a response lingers unless the client asked for it and sent nothing more (`conn::lingering_close`) | `tests/keepalive_race.rs`: `clients_racing_the_drain_get_every_answer`, `a_connection_idle_longer_than_the_grace_closes_at_once`, `a_response_is_not_cut_by_a_reset_when_the_client_sent_more`, `a_client_that_asked_to_close_is_not_waited_for`, `a_client_that_asked_to_close_but_sent_more_still_gets_its_whole_response`; `tests/keepalive_race_under_load.rs`: `requests_waiting_in_the_kernel_when_idle_connections_close_are_answered` |
//! | `var shuttingDown atomic.Bool` | `ShutdownState::is_shutting_down`, over a `PhaseCell` (`shutdown::phase`), read by `healthz` (`service::health`) | `healthz_flips_to_503_during_the_drain_delay_while_requests_are_served`; `tests/signals_and_exit_codes.rs`: `the_health_check_fails_during_the_drain_delay` |
//! | `time.Sleep(3 * time.Second)` before `Shutdown` | `--drain-delay`: the lame-duck `Acceptor::accept_until` (`server::accept_loop`); `--drain-checks` ends it once the balancers have seen `/healthz` fail ([`health_checkers`]) | `healthz_flips_to_503_during_the_drain_delay_while_requests_are_served`; `tests/drain_checks.rs`: `the_phase_ends_on_the_checks_soon_after_the_nth_failure`, `with_no_checker_the_phase_lasts_the_whole_cap` |
//! | `http.ServeContent`: `Range`, `If-Range`, `ETag`, `HEAD` | `GET /api/download` (`service::download`): a body generated by offset, one range per answer, `If-Range` on the strong `ETag` only; not ended by the drain, cut at the forced close, resumed on the next process | `tests/downloads_resume_across_a_shutdown.rs`: `every_form_of_one_range_gets_206_and_its_slice_of_the_body`, `if_range_with_the_etag_gets_206_and_anything_else_the_whole_body`, `a_download_keeps_streaming_through_the_drain_and_the_exit_is_clean`, `a_download_cut_at_an_upgrades_deadline_resumes_on_the_new_process_to_the_same_digest` |
//! | `closing <-chan struct{}` | the `closing` token of [`ShutdownState`]; `EventStream::poll_frame` (`service::event_stream`) | `the_event_stream_ends_with_its_final_event` |
//! | `srv.RegisterOnShutdown(hub.Close)` for a WebSocket hub; `Shutdown` "does not attempt to close nor wait for hijacked connections" | the hub's own on-shutdown hook (`Sockets::refuse_new`: new upgrades get `503`), sessions as tasks of a registry the drain waits for ([`long_lived::sockets`]), Close 1012/1001 and the closing handshake (`long_lived::websocket::session`), aborted at the forced close | `tests/websockets.rs`: `hub_clients_see_every_item_once_in_order_across_five_upgrades`, `a_new_websocket_in_the_lame_duck_gets_503_while_open_ones_keep_working`, `a_websocket_that_never_answers_the_close_is_aborted_at_the_deadline` |
//! | long polling, told to end by `closing` | `long_lived::poll`: answers at once at the drain, with `Connection: close` | `long_polls_answer_at_once_when_the_drain_begins`, `a_long_polling_client_misses_no_item_across_upgrades` |
//! | (none: every goodbye at once; Envoy's `--drain-strategy gradual`, HAProxy's `close-spread-time`) | `--drain-spread` (at most 10 s), `--drain-spread-burst` (500 at once), `--drain-spread-rate` (then 1000 a second): [`shutdown::spread::Spread`] and its [`shutdown::spread::Pace`], a token bucket, drawn by `Http1Deadlines` (idle closes of live connections; dormant ones, idle for longer than `--keepalive-grace`, close at once), `last_if_draining` (busy HTTP/1: the chance ramps), and `ShutdownState::goodbye` (HTTP/2 GOAWAY, event streams, WebSockets) | `tests/drain_spread.rs`: `live_idle_connections_close_at_instants_spread_over_the_window`, `dormant_idle_connections_close_at_once_whatever_the_spread`, `streams_and_websockets_say_goodbye_at_spread_instants`, `a_second_signal_skips_the_spread`, `a_quiet_server_gets_a_window_in_proportion_and_exits_at_once`; `benches/storm.rs` (the reconnect storm, measured); `tests/cli.rs`: `a_drain_spread_not_shorter_than_the_deadline_is_a_startup_error` |
//! | (none; gRPC's `MaxConnectionAge`, `MaxConnectionAgeGrace`) | `--max-connection-age`, `--max-connection-age-grace` (`conn::max_age`): the `aged` answer (`service::conn_body`), the grace in `Http1Deadlines`, GOAWAY and the grace for HTTP/2 (`conn`), `session::told_to_go` for WebSockets, the event stream's `closing` | `tests/max_connection_age.rs`: `a_keep_alive_connection_past_its_age_gets_connection_close`, `an_h2c_connection_past_its_age_gets_goaway`, `streams_and_websockets_past_their_age_are_told_to_go` |
//! | `http2.Server{MaxConcurrentStreams, MaxReadFrameSize, ...}` and Go's fixes for Rapid Reset and CONTINUATION floods | `conn::h2_limits` (every HTTP/2 limit set explicitly: 100 streams, 64 KiB send buffer per stream, 20 pending resets), `conn::h2_stall` | `tests/floods.rs`: `rapid_reset_gets_goaway_enhance_your_calm_and_healthz_keeps_answering`, `a_continuation_flood_gets_goaway_enhance_your_calm`, `streams_past_the_concurrency_limit_are_refused` |
//! | `ErrorLog *log.Logger` (writes on the caller's goroutine, and blocks when stderr does) | `process::log_writer`: a bounded, lossy queue and a writer thread (`tracing-appender`'s `non_blocking`); dropped lines counted; the report held aside and written last, the exit waiting for stderr at most `EXIT_LOG_WAIT` | `tests/log_writer.rs`: `a_stderr_nobody_reads_does_not_stop_serving_or_the_exit`, `the_report_survives_a_full_queue_and_counts_the_dropped_lines` |
//! | `runCleaner(ctx)` | [`cleaner::run`] via [`Server::add_worker`] | `the_cleaner_stops_when_the_drain_begins` |
//! | `TestHandlerContextCanceled` | a pre-cancelled token at the store layer ([`store`]) | `tests/storage.rs`: `a_cancelled_token_returns_cancelled_without_touching_the_database`; the store contract (`tests/support/contract.rs`, run on the memory store, SQLite and PostgreSQL): `a_cancelled_token_returns_cancelled_at_once_from_every_method` |
//! | "back-end writes left half done" | writes as tracked tasks with their own token, one transaction each ([`store::sqlite`], `service::items`) | `tests/storage.rs`: `a_write_whose_client_left_commits_and_the_drain_waits_for_it`, `a_write_forced_past_the_deadline_rolls_back_and_leaves_no_trace`; `tests/storage_binary.rs`: `every_acknowledged_write_survives_sigterm_and_the_exit_is_clean` |
//! | (none in `net/http`; Stripe's `Idempotency-Key`, draft-ietf-httpapi-idempotency-key-header) | `--idempotency-ttl`; `service::idempotency_key` (the header, the request's fingerprint, the keys in flight: `409`), [`store::once`] (the rule; the key's row and response in the write's own transaction; PostgreSQL's advisory lock across instances), [`store::StoreError::CommitUnknown`] (the `503` that says a retry with the key is safe) | `tests/idempotency.rs`: `twenty_concurrent_requests_with_one_key_write_once`, `on_sqlite_a_restart_between_the_request_and_its_retry_changes_nothing`, `a_request_whose_key_is_being_written_gets_409_at_once`, `an_expired_key_is_a_new_write_and_the_cleaner_removes_it`; `tests/idempotency_postgres.rs`: `a_retry_after_the_connection_broke_after_commit_returns_the_stored_item`, `a_key_being_written_by_another_instance_gets_409_at_once` |
//! | — (no built-in equivalent; the Go library is cloudflare's tableflip: `Upgrade()`, `Ready()`, `Exit()`) | SIGHUP → `Upgrader::serve`: start, ready, exit ([`upgrade`]) | `tests/upgrade.rs`: `three_upgrades_under_load_fail_no_request`, `the_file_replaced_on_disk_is_what_the_upgrade_runs`, `a_failed_upgrade_keeps_the_old_process_serving_and_reaps_the_new_one`, `sighup_during_an_upgrade_is_ignored_and_sigterm_stops_the_new_process`, `every_item_acknowledged_across_an_upgrade_is_kept` |
//! | tableflip's `Fds.Listen` / `coreos/go-systemd` `activation.Listeners()` | [`process::listener::take_inherited`] (the `listenfd` crate) | `tests/systemd.rs`: `socket_activation_serves_the_inherited_socket` |
//! | `coreos/go-systemd` `daemon.SdNotify` | [`process::notify::Notifier`] (the `sd-notify` crate) | `tests/systemd.rs`: `the_notify_socket_hears_ready_reloading_mainpid_and_stopping` |
//!
//! # Where the semantics differ from Go
//!
//! - **Header and idle timeouts.** Go's `ReadHeaderTimeout` (or
//!   `ReadTimeout`) runs from the first byte of a request; `IdleTimeout`
//!   bounds the wait for it. lameduck does the same, and like Go times the
//!   *first* request on a connection from the accept. For HTTP/2, hyper has
//!   no idle timeout; lameduck counts each connection's open streams
//!   (`conn::h2_idle`) and closes the connection once none has been open
//!   for `--idle-timeout`, as Go's HTTP/2 server does, and like Go it says
//!   so first: GOAWAY with `NO_ERROR` and the last stream it took. hyper's
//!   GOAWAY comes in two steps (the highest id, then after a PING round
//!   trip the real last id); a client that never answers the PING is
//!   closed a second later, Go's `goAwayTimeout`.
//! - **`HEAD` and `OPTIONS`.** Go's `net/http` answers `HEAD` by running the
//!   `GET` handler and discarding what it writes, over HTTP/1 and HTTP/2.
//!   hyper discards the body for HTTP/1 only. lameduck serves `HEAD` on
//!   every route that serves `GET`, on both protocols: the same handler
//!   runs, the body is replaced by an empty one, and `Content-Length` is
//!   the length `GET` would send. Over HTTP/1.1 that answer does not say
//!   `Transfer-Encoding: chunked` as `GET`'s does (RFC 9112 allows both).
//!   Go's `http.Server` answers `OPTIONS *` itself, 200 with no `Allow`;
//!   here `OPTIONS` on a path is 204 with the path's `Allow`, and
//!   `OPTIONS *` is 204 with every method the server takes.
//! - **`ReadTimeout` for the body** becomes part of `--request-timeout`: a
//!   body still arriving at the request deadline is answered `408` and the
//!   connection closed. Go just fails the read.
//! - **`WriteTimeout`** in Go sets a deadline on the socket write; a handler
//!   that overruns it keeps running and its write fails. Here
//!   `--request-timeout` drops the handler (so its work stops) and answers
//!   `503`. Event streams are exempt: they end on shutdown instead. Writing
//!   the answer is bounded separately: a write that makes no progress for
//!   `--request-timeout` closes the connection, a limit on a *stall*, not
//!   on the whole write, so a slow reader that keeps reading is never cut
//!   off.
//! - **Close at the deadline.** Go's `Shutdown` returns
//!   `context.DeadlineExceeded` and leaves the connections to you; `Close`
//!   then resets them. lameduck first answers requests that have not
//!   started responding with `503` + `Retry-After` + `Connection: close`
//!   (bounded by `--force-grace`, default 1 s), then aborts the rest.
//! - **Hooks run in order.** Go starts a goroutine per `RegisterOnShutdown`
//!   hook. lameduck runs them one after another, in the order they were
//!   registered, on one blocking thread; a panicking hook is logged and
//!   does not stop the ones after it. Neither waits for them.
//! - **Idle keep-alive connections at the drain.** Go's `Shutdown` closes
//!   every idle connection at once and again every poll interval, so a
//!   client that sends its next request at that moment gets a reset.
//!   lameduck keeps a connection used within `--keepalive-grace` (2 s)
//!   open, answers its next request with `Connection: close`, and closes it
//!   when the grace ends; only connections idle for longer (dormant) close
//!   at once, outside the drain's spread
//!   (`conn::keepalive_grace`), and not even those if the kernel already
//!   holds their next request, unseen because the runtime is busy
//!   (`FIONREAD`, `ConnState::bytes_waiting`): that request is answered,
//!   with `Connection: close`. Both linger after a close that follows a
//!   response: Go half-closes and waits 500 ms (`rstAvoidanceDelay`) when
//!   the request body was not all read; lameduck does it after every
//!   response it closes on, reading until the client's FIN, at most 1 s or
//!   64 KiB, unless the client asked to close, sent no body, and nothing it
//!   sent is waiting unread (`conn::lingering_close`).
//! - **Knowing the drain is over.** Go's `Shutdown` polls: it checks for
//!   idle connections on a ticker that starts at 1 ms and doubles up to
//!   500 ms, so the last connection's end is seen up to half a second
//!   late. lameduck's drain sleeps until the open-connection count, which
//!   every ending connection updates anyway, reaches zero, and is woken
//!   once, then (`ConnLimit::none_open`, `conn::limit`).
//! - **A second signal.** After `signal.NotifyContext`'s `stop()`, a second
//!   Ctrl-C kills a Go process with no report. Here it is a deliberate
//!   forced close that still logs the report and exits 1.
//! - **Ranges.** Go's `http.ServeContent` answers several ranges with a
//!   `multipart/byteranges` body, and lets `If-Range` match a
//!   `Last-Modified` date too. `/api/download` answers several ranges with
//!   the whole body (RFC 9110 allows either), and has no `Last-Modified`:
//!   only its strong `ETag` matches `If-Range`, because a resume splices
//!   bytes and only a strong validator promises the same bytes. Go's
//!   `Shutdown` waits for a download like for any active connection, and
//!   `Close` cuts it; lameduck does the same, with the deadline between.
//! - **Malformed query strings.** Go's `r.URL.Query()` drops a pair with a
//!   bad escape without a word and hands over bytes that are not UTF-8 as
//!   they are. lameduck answers `400` for either: a request is not served
//!   with half its parameters.
//! - **Hijacked connections.** Go's `Shutdown` neither closes nor waits
//!   for a hijacked connection (a WebSocket); its owner must track it,
//!   through `RegisterOnShutdown`. lameduck does that tracking itself:
//!   every WebSocket session is a task of a registry the drain waits for,
//!   closed with 1012 or 1001 and a closing handshake, aborted at the
//!   deadline, and counted in the report ([`long_lived`]).
//! - **New connections during the drain.** Go serves a connection accepted
//!   just before `Shutdown` (state `StateNew`) if its request arrives. So
//!   does lameduck: a connection whose first bytes arrive after the drain
//!   began is served one request with `Connection: close`.

// The book is read with `--document-private-items` (the README says so):
// the machinery lives in crate-private modules, and the docs of public
// items link into it on purpose.
#![allow(rustdoc::private_intra_doc_links)]

mod app;
pub mod cleaner;
pub mod cli;
mod config;
mod conn;
#[cfg(feature = "test-harness")]
pub mod fuzzing;
mod http1_state;
pub mod long_lived;
mod metrics;
pub mod process;
mod server;
mod service;
mod shutdown;
pub mod store;
#[cfg(feature = "test-harness")]
pub mod testing;
pub mod upgrade;

pub use app::App;
pub use config::Config;
pub use metrics::Metrics;
pub use server::Server;
pub use server::hooks::HookResult;
pub use server::report::{LameDuckEnd, Outcome, ShutdownReport};
pub use shutdown::ShutdownState;
pub use shutdown::health_checkers;
pub use shutdown::phase::Phase;
pub use shutdown::stop::Stop;
