using System.Collections.Immutable;
using System.Diagnostics;
using System.Text;
using OllamaContinuity.Failover.Circuit;
using OllamaContinuity.Failover.Protocols;
using OllamaContinuity.Failover.Rescue;
using OllamaContinuity.Failover.Streaming;
using OllamaContinuity.Failover.Retry;
using OllamaContinuity.Http;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Failover;

/// <summary>The backends of one request, in order: the cloud (optional), then Ollama endpoints by priority.</summary>
public sealed record BackendPlan(BackendEndpoint? Cloud, IReadOnlyList<BackendEndpoint> Ollama)
{
    /// <summary>Where the request log goes; see <see cref="RequestLog.ResolvePath"/>. Null: the environment or the default.</summary>
    public string? LogPath { get; init; }

    /// <summary>Write no request log at all (benchmarks).</summary>
    public bool DisableLog { get; init; }

    /// <summary>Retry before failover (see <see cref="CloudRetryOptions"/>). Null: <see cref="CloudRetryOptions.Default"/>.</summary>
    public CloudRetryOptions? Retry { get; init; }

    /// <summary>How often an open circuit of this plan's cloud is probed. Null: <see cref="CircuitOptions.ProbeInterval"/>.</summary>
    public TimeSpan? ProbeInterval { get; init; }
}

/// <summary>Settings shared by every request of an engine.</summary>
public sealed record FailoverEngineOptions
{
    /// <summary>The clock for timeouts, circuits and timestamps. The default value is <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    public CircuitOptions Circuit { get; init; } = new();

    /// <summary>The largest answer read from one backend (a body or a whole stream, after decompression); <see cref="AiRequest.MaxResponseBytes"/> overrides it. The default value is 16 MiB.</summary>
    public int MaxResponseBytes { get; init; } = Streaming.ResponseLimits.DefaultMaxResponseBytes;

    /// <summary>What to do when a stream breaks after text was shown; <see cref="AiRequest.StreamRescue"/> overrides it. The default value is <see cref="StreamRescueMode.Restart"/>.</summary>
    public StreamRescueMode StreamRescue { get; init; } = StreamRescueMode.Restart;

    /// <summary>Creates the TCP sockets of the HTTP pool (tests create them inside a network namespace). The default value is null: a plain dual-mode socket.</summary>
    public Func<System.Net.Sockets.Socket>? SocketFactory { get; init; }
}

/// <summary>
/// The failover core: cloud first, then Ollama endpoints in priority order; circuits per cloud endpoint;
/// contingency through <see cref="IContingencySource"/>; one log line per request. Thread-safe; one per session.
/// </summary>
public sealed class FailoverEngine : IDisposable
{
    /// <summary>The line the seed's drill looks for, written to the verbose stream on every failover.</summary>
    public const string FailoverLine = "Cloud unavailable, falling back to Ollama";

    /// <summary>The line written when contingency skips the cloud.</summary>
    public const string ContingencyLine = "Contingency mode active, routing directly to Ollama";

    // The session's engine also reads persisted contingency, writes the contingency log and sends alerts.
    private static readonly Lazy<FailoverEngine> LazyShared = new(() => Contingency.ContinuityRuntime.Attach(new FailoverEngine()), LazyThreadSafetyMode.ExecutionAndPublication);
    private readonly TimeProvider _time;
    private readonly HttpClientPool _pool;
    private readonly CircuitRegistry _circuits;
    private readonly ResponseLimits _limits;
    private readonly StreamRescueMode _streamRescue;
    private readonly CloudRetryStrategy _retry;
    private ImmutableArray<IContingencySource> _contingency = [new EnvironmentContingencySource()];

    public FailoverEngine(FailoverEngineOptions? options = null)
    {
        options ??= new();
        _time = options.TimeProvider;
        _limits = ResponseLimits.Default with { MaxResponseBytes = options.MaxResponseBytes };
        _streamRescue = options.StreamRescue;
        _pool = new HttpClientPool(_time, options.SocketFactory);
        _circuits = new CircuitRegistry(_time, options.Circuit, Raise, new CloudProber(_pool, _time));
        _retry = new CloudRetryStrategy(_time);
    }

    /// <summary>The engine every cmdlet of the session shares (one connection pool, one set of circuits).</summary>
    public static FailoverEngine Shared => LazyShared.Value;

    /// <summary>Raised on circuit and failure state changes (alerts hook in here). Handlers must not throw; if they do, it is ignored.</summary>
    public event Action<ContinuityEvent>? StateChanged;

    /// <summary>Raised after a request was served (the contingency log hooks in here). Handlers must not throw; if they do, it is ignored.</summary>
    public event Action<AiRequest, AiResponse>? RequestServed;

    public TimeProvider TimeProvider => _time;

    public HttpClientPool HttpPool => _pool;

    /// <summary>Adds a contingency source (persisted, per-workflow contingency plugs in here).</summary>
    public void AddContingencySource(IContingencySource source) => ImmutableInterlocked.Update(ref _contingency, a => a.Contains(source) ? a : a.Add(source));

    public void RemoveContingencySource(IContingencySource source) => ImmutableInterlocked.Update(ref _contingency, a => a.Remove(source));

    /// <summary>The first source that says contingency is on for <paramref name="workflow"/>, or null.</summary>
    public ContingencyDecision? EvaluateContingency(string? workflow)
    {
        var now = _time.GetUtcNow();
        foreach (var s in _contingency)
        {
            if (s.Evaluate(workflow, now) is { } d)
            {
                return d;
            }
        }

        return null;
    }

    /// <summary>The cloud circuits this session knows, with their state.</summary>
    public IReadOnlyList<CircuitSnapshot> GetCircuits() => _circuits.Snapshot();

    /// <summary>Forgets every circuit (all closed).</summary>
    public void ResetCircuits() => _circuits.Clear();

    internal void Raise(ContinuityEvent e)
    {
        var handlers = StateChanged;
        if (handlers is null)
        {
            return;
        }

        foreach (Action<ContinuityEvent> h in handlers.GetInvocationList())
        {
            try
            {
                h(e);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Debug.WriteLine("StateChanged handler failed: " + ex.GetType().Name);
            }
        }
    }

    /// <summary>Sends one request through the plan. Throws <see cref="AiRequestException"/> when nothing answered.</summary>
    public async Task<AiResponse> SendAsync(AiRequest request, BackendPlan plan, IFailoverObserver? observer = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(plan);
        if (request.Messages.Count == 0 || request.Messages.All(m => string.IsNullOrWhiteSpace(m.Content)))
        {
            throw new ArgumentException("The request has no prompt.", nameof(request));
        }

        FailoverContext.Observer = observer; // restored for the caller when this method returns
        var timestamp = _time.GetUtcNow();
        var started = _time.GetTimestamp();
        var attempts = new List<AiAttempt>(1 + plan.Ollama.Count);
        var failoverReason = "";
        var contingency = false;
        string? contingencySource = null;
        var secrets = plan.Cloud?.ApiKey;
        var rescue = new StreamRescue(request, request.StreamRescue ?? _streamRescue, observer);
        var missing = new MissingModel();

        try
        {
            if (plan.Cloud is { } cloud)
            {
                var decision = EvaluateContingency(request.Workflow);
                if (decision?.Warning is { } contingencyWarning)
                {
                    observer?.OnWarning(contingencyWarning);
                }

                // Fail closed: a state that cannot be read may have kept this workflow off the cloud.
                if (decision?.Unreadable is { } unreadable && cloud.HasApiKey)
                {
                    attempts.Add(Skipped(cloud, FailureClass.Contingency, unreadable).Attempt);
                    throw new AiRequestException(AiRequestFailure.ContingencyStateUnreadable, unreadable, request.RequestId, attempts);
                }

                AttemptResult result;
                if (decision is not null)
                {
                    contingency = true;
                    contingencySource = decision.Source;
                    result = Skipped(cloud, FailureClass.Contingency, $"contingency ({decision.Source}){(decision.Reason is null ? "" : ": " + decision.Reason)}");
                    observer?.OnVerbose(ContingencyLine);
                }
                else if (!cloud.HasApiKey)
                {
                    result = Skipped(cloud, FailureClass.NotConfigured, "no cloud API key (set -CloudApiKey or CLOUD_API_KEY)");
                }
                else
                {
                    observer?.OnAttemptStarted(cloud, 1, 1 + plan.Ollama.Count);
                    result = await CloudAttemptAsync(cloud, request, plan, attempts, observer, cancellationToken).ConfigureAwait(false);
                }

                attempts.Add(result.Attempt);
                if (result.Succeeded)
                {
                    return await FinishAsync(request, plan, attempts, result, cloud, timestamp, started, "", false, null).ConfigureAwait(false);
                }

                var d = result.Decision!;
                failoverReason = d.Class.ToString();
                if (d.Class == FailureClass.CircuitOpen)
                {
                    contingency = true;
                    contingencySource = "Automatic";
                }

                if (d.Warn)
                {
                    observer?.OnWarning($"The cloud at {cloud.Display} rejected our credentials or account ({d.Detail}). This is a configuration problem, not an outage: fix the key or the account; requests are being served by Ollama meanwhile.");
                }

                // A stream that broke after text was shown is rescued on Ollama (unless -StreamRescue None).
                var rescued = !d.FailOver && rescue.Rescues(result) && plan.Ollama.Count > 0;
                if (!d.FailOver && !rescued)
                {
                    throw NoFailover(request, attempts, d, result);
                }

                if (decision is null)
                {
                    observer?.OnVerbose($"{FailoverLine} ({d.Class}: {d.Detail})");
                }

                // -ConfirmFailover asks on an outage; a contingency enabled with -RequireApproval asks before serving locally.
                if ((request.RequireFailoverApproval && d.Class != FailureClass.Contingency) || decision?.RequireApproval == true)
                {
                    var target = plan.Ollama.Count > 0 ? plan.Ollama[0].Display : "Ollama";
                    var why = decision is null ? $"The cloud failed ({d.Class}: {d.Detail})." : $"Contingency is on ({decision.Source}) and this workflow requires approval.";
                    var ok = observer is not null && await observer.ApproveFailoverAsync(
                        $"{why} Send this request to the local Ollama server at {target}?", cancellationToken).ConfigureAwait(false);
                    if (!ok)
                    {
                        attempts.Add(Skipped(plan.Ollama.Count > 0 ? plan.Ollama[0] : cloud, FailureClass.FailoverDeclined, "failover was not approved").Attempt);
                        throw new AiRequestException(AiRequestFailure.FailoverNotApproved,
                            (decision is null ? $"The cloud failed ({d.Class}) and falling back" : $"Contingency is on ({decision.Source}) and serving this workflow") + " to Ollama needs approval, which was not given.", request.RequestId, attempts);
                    }
                }

                if (rescued)
                {
                    rescue.Prepare(result, cloud, plan.Ollama[0]);
                }
            }
            else
            {
                var decision = EvaluateContingency(request.Workflow);
                if (decision is not null)
                {
                    contingency = true;
                    contingencySource = decision.Source;
                    failoverReason = FailureClass.Contingency.ToString();
                }
            }

            for (var i = 0; i < plan.Ollama.Count; i++)
            {
                var ollama = plan.Ollama[i];
                observer?.OnAttemptStarted(ollama, (plan.Cloud is null ? 1 : 2) + i, (plan.Cloud is null ? 0 : 1) + plan.Ollama.Count);
                var result = await AttemptAsync(ollama, rescue.Request, observer, cancellationToken).ConfigureAwait(false);
                if (rescue.ContinuationRejected(result))
                {
                    attempts.Add(result.Attempt);
                    rescue.RestartAfterRejection(result, ollama);
                    result = await AttemptAsync(ollama, rescue.Request, observer, cancellationToken).ConfigureAwait(false);
                }

                attempts.Add(result.Attempt);
                if (result.Succeeded)
                {
                    return await FinishAsync(request, plan, attempts, result with { Text = rescue.Compose(result.Text ?? "") }, ollama, timestamp, started, failoverReason, contingency, contingencySource).ConfigureAwait(false);
                }

                if (!result.Decision!.FailOver)
                {
                    if (rescue.Rescues(result) && i + 1 < plan.Ollama.Count)
                    {
                        rescue.Prepare(result, ollama, plan.Ollama[i + 1]);
                        continue;
                    }

                    if (missing.Note(ollama, result))
                    {
                        observer?.OnVerbose($"Ollama at {ollama.Display} does not have the model {ollama.Model} ({result.Decision.Detail}); trying the next Ollama server");
                        continue;
                    }

                    throw NoFailover(request, attempts, result.Decision, result.TextEmitted ? result with { Text = rescue.Compose(result.Text ?? "") } : result);
                }

                observer?.OnVerbose($"Ollama at {ollama.Display} failed ({result.Decision.Class}: {result.Decision.Detail})");
            }

            var summary = string.Join("; ", attempts.Select(a => $"{a.Backend} {a.Endpoint}: {a.FailureClass}{(a.Detail is null ? "" : " (" + a.Detail + ")")}"));
            Raise(new(ContinuityEventKind.AllBackendsFailed, _time.GetUtcNow(), null, summary, Workflow: request.Workflow));
            if (missing.Count > 0 && missing.Count == plan.Ollama.Count)
            {
                throw new AiRequestException(AiRequestFailure.ModelNotFound,
                    Redact.Scrub($"{missing.Describe(all: true)} Attempts: {summary}", secrets)!, request.RequestId, attempts);
            }

            throw new AiRequestException(AiRequestFailure.AllBackendsFailed,
                Redact.Scrub($"All backends failed for request {request.RequestId}: {summary}{(missing.Count > 0 ? " " + missing.Describe(all: false) : "")}", secrets)!, request.RequestId, attempts);
        }
        catch (AiRequestException e)
        {
            if (!plan.DisableLog)
            {
                await LogAsync(plan, RequestLog.Serialize(request, null, attempts, timestamp, ElapsedMs(started), failoverReason, contingency, contingencySource, e.Failure.ToString())).ConfigureAwait(false);
            }
            throw;
        }
    }

    private async Task<AiResponse> FinishAsync(AiRequest request, BackendPlan plan, List<AiAttempt> attempts, AttemptResult result, BackendEndpoint served,
        DateTimeOffset timestamp, long started, string failoverReason, bool contingency, string? contingencySource)
    {
        var response = new AiResponse
        {
            Backend = served.Role.ToString(),
            Text = result.Text ?? "",
            Model = result.Model ?? served.Model,
            RequestId = request.RequestId,
            LatencyMs = ElapsedMs(started),
            FailoverReason = failoverReason,
            Attempts = attempts.ToArray(),
            Workflow = request.Workflow,
            Contingency = contingency,
            ContingencySource = contingencySource,
            Timestamp = timestamp,
            Endpoint = served.Display,
            InputTokens = result.InputTokens,
            OutputTokens = result.OutputTokens,
            FinishReason = result.FinishReason,
            Thinking = request.IncludeThinking ? result.Thinking : null,
        };
        // Awaited, not fired and forgotten: a line must not be lost when the process exits right after.
        if (!plan.DisableLog)
        {
            await LogAsync(plan, RequestLog.Serialize(request, response, attempts, timestamp, response.LatencyMs, failoverReason, contingency, contingencySource, null)).ConfigureAwait(false);
        }

        if (RequestServed is { } servedHandlers)
        {
            foreach (Action<AiRequest, AiResponse> h in servedHandlers.GetInvocationList())
            {
                try
                {
                    h(request, response);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    Debug.WriteLine("RequestServed handler failed: " + ex.GetType().Name);
                }
            }
        }

        return response;
    }

    private async Task<string?> LogAsync(BackendPlan plan, byte[] line) =>
        plan.DisableLog ? null : await RequestLog.AppendAsync(RequestLog.ResolvePath(plan.LogPath), line).ConfigureAwait(false);

    private static AiRequestException NoFailover(AiRequest request, List<AiAttempt> attempts, FailureDecision d, AttemptResult result)
    {
        var failure = d.Class == FailureClass.ContentPolicy ? AiRequestFailure.ContentPolicyRefusal
            : result.TextEmitted ? AiRequestFailure.StreamInterrupted
            : AiRequestFailure.RequestRejected;
        var last = attempts[^1];
        var message = failure switch
        {
            AiRequestFailure.ContentPolicyRefusal => $"The {last.Backend} backend at {last.Endpoint} refused the request on content policy ({d.Detail}). It is not sent to another backend: routing around a refusal would bypass the provider's policy.",
            AiRequestFailure.StreamInterrupted => $"The stream from {last.Backend} at {last.Endpoint} broke after text was shown ({d.Class}: {d.Detail}); the partial answer is kept and the request is not replayed.",
            _ => $"The {last.Backend} backend at {last.Endpoint} rejected the request ({d.Class}: {d.Detail}). This is a problem with the request itself, so it is not sent to Ollama.",
        };
        return new AiRequestException(failure, message, request.RequestId, attempts, result.TextEmitted ? result.Text : null);
    }

    /// <summary>The cloud's turn: through its circuit, with one retry when it is worth it (earlier tries go into <paramref name="attempts"/>).</summary>
    private Task<AttemptResult> CloudAttemptAsync(BackendEndpoint cloud, AiRequest request, BackendPlan plan, List<AiAttempt> attempts, IFailoverObserver? observer, CancellationToken cancellationToken) =>
        _retry.ExecuteAsync(_circuits.Get(cloud), cloud, plan, attempts, observer, (ep, ct) => AttemptAsync(ep, request, observer, ct), cancellationToken);

    private AttemptResult Skipped(BackendEndpoint ep, FailureClass cls, string detail) =>
        new(new AiAttempt { Backend = ep.Role.ToString(), Endpoint = ep.Display, Model = ep.Model, Outcome = "Skipped", FailureClass = cls.ToString(), Detail = detail },
            new FailureDecision(cls, true, detail));

    /// <summary>One attempt on one backend, with its connect, first-token, stall and total timeouts, and its read bounds.</summary>
    internal async Task<AttemptResult> AttemptAsync(BackendEndpoint ep, AiRequest request, IFailoverObserver? observer, CancellationToken cancellationToken)
    {
        var protocol = ChatProtocol.For(ep.Kind);
        var t0 = _time.GetTimestamp();
        var timeouts = ep.Timeouts;
        var limits = request.MaxResponseBytes is int max && max != _limits.MaxResponseBytes ? _limits with { MaxResponseBytes = max } : _limits;
        using var total = new CancellationTokenSource(timeouts.Total, _time);
        // Streaming only: the first-token, then stall, watchdog. A whole-body request has just the total timeout.
        using var watchdog = request.Stream ? new StreamWatchdog(timeouts, _time) : null;
        using var linked = watchdog is null
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, total.Token)
            : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, total.Token, watchdog.Token);
        var progress = request.Stream ? new StreamProgress(request.IncludeThinking) : null;
        int? status = null;

        AttemptResult Fail(FailureDecision d)
        {
            var emitted = progress?.TextEmitted == true;
            var partial = emitted ? progress!.Text.ToString() : null;
            return new(new AiAttempt
            {
                Backend = ep.Role.ToString(), Endpoint = ep.Display, Model = ep.Model, Outcome = "Failed", FailureClass = d.Class.ToString(),
                StatusCode = d.StatusCode ?? status, LatencyMs = Since(t0), Detail = Redact.Scrub(d.Detail, ep.ApiKey),
                BadEvents = progress?.BadEvents ?? 0, PartialText = partial,
            }, d with { Detail = Redact.Scrub(d.Detail, ep.ApiKey)! }, partial, progress?.Model, TextEmitted: emitted);
        }

        try
        {
            using var message = protocol.BuildRequest(ep, request);
            message.Options.Set(HttpClientPool.ConnectTimeoutOption, timeouts.Connect);
            using var response = await _pool.Client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
            status = (int)response.StatusCode;
            if (status is < 200 or > 299)
            {
                var errorBody = Encoding.UTF8.GetString(await BoundedBody.ReadAllAsync(response, limits, limits.MaxErrorBodyBytes, truncate: true, linked.Token).ConfigureAwait(false));
                var (code, msg) = ChatProtocol.ParseError(Redact.Scrub(errorBody, ep.ApiKey)!); // scrubbed before any cut
                return Fail(FailoverClassifier.FromStatus(status.Value, response.Headers, code, msg));
            }

            if (progress is null)
            {
                var body = await BoundedBody.ReadAllAsync(response, limits, limits.MaxResponseBytes, truncate: false, linked.Token).ConfigureAwait(false);
                var chunk = protocol.ParseBody(body);
                return chunk.Kind switch
                {
                    ChunkKind.Text when string.IsNullOrWhiteSpace(chunk.Text) => Fail(FailoverClassifier.FromBody(FailureClass.EmptyResponse, "the response has no text", false)),
                    ChunkKind.Text => Success(chunk.Text!, chunk.Model, chunk.InputTokens, chunk.OutputTokens, chunk.FinishReason, chunk.Thinking, 0),
                    ChunkKind.Refusal => Fail(FailoverClassifier.FromBody(FailureClass.ContentPolicy, chunk.Error!, false)),
                    ChunkKind.Error => Fail(FailoverClassifier.FromBody(FailureClass.StreamError, "error in the response body: " + chunk.Error, false)),
                    _ => Fail(FailoverClassifier.FromBody(FailureClass.MalformedResponse, chunk.Error ?? "unexpected response", false)),
                };
            }

            await using var stream = await BoundedBody.OpenAsync(response, limits, linked.Token).ConfigureAwait(false);
            var failed = await ChatStreamReader.ReadAsync(protocol, stream, limits, progress, watchdog!, observer, linked.Token).ConfigureAwait(false);
            return failed is not null
                ? Fail(failed)
                : Success(progress.Text.ToString(), progress.Model, progress.InputTokens, progress.OutputTokens, progress.FinishReason, progress.Thinking?.ToString(), progress.BadEvents);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (ResponseLimitExceededException e)
        {
            return Fail(FailoverClassifier.FromBody(FailureClass.ResponseTooLarge, e.Message, progress?.TextEmitted == true));
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException or ObjectDisposedException or InvalidOperationException or System.Text.Json.JsonException or InvalidDataException)
        {
            var p = total.IsCancellationRequested ? TimeoutPhase.Total : watchdog?.Fired == true ? watchdog.Phase : TimeoutPhase.Total;
            return Fail(FailoverClassifier.FromException(ex, p, progress?.TextEmitted == true));
        }

        AttemptResult Success(string answer, string? m, int? inTok, int? outTok, string? finish, string? thinking, int badEvents)
        {
            if (finish == "length")
            {
                observer?.OnWarning($"The answer from {ep.Role} at {ep.Display} was cut at the token limit (finish reason 'length'): it is truncated. Raise -MaxTokens or shorten the request.");
            }

            return new(new AiAttempt { Backend = ep.Role.ToString(), Endpoint = ep.Display, Model = m ?? ep.Model, Outcome = "Success", StatusCode = status, LatencyMs = Since(t0), BadEvents = badEvents },
                null, answer, m, inTok, outTok, progress?.TextEmitted == true)
            { FinishReason = finish, Thinking = thinking };
        }
    }

    private double Since(long t0) => _time.GetElapsedTime(t0).TotalMilliseconds;

    private double ElapsedMs(long t0) => Since(t0);

    public void Dispose()
    {
        _circuits.Dispose();
        _pool.Dispose();
    }
}
