using System.Collections.Concurrent;
using OllamaContinuity.Failover.Circuit;

namespace OllamaContinuity.Failover;

/// <summary>One circuit per cloud endpoint (scheme, host, port, path), shared by every request of the session.</summary>
internal sealed class CircuitRegistry : IDisposable
{
    private readonly ConcurrentDictionary<string, CloudCircuit> _circuits = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly CircuitOptions _options;
    private readonly Action<ContinuityEvent> _raise;
    private readonly CloudProber _prober;

    public CircuitRegistry(TimeProvider time, CircuitOptions options, Action<ContinuityEvent> raise, CloudProber prober)
    {
        options.Validate();
        _time = time;
        _options = options;
        _raise = raise;
        _prober = prober;
    }

    public CloudCircuit Get(BackendEndpoint endpoint) =>
        _circuits.GetOrAdd(endpoint.CircuitKey, static (_, s) => new CloudCircuit(s.self, s.endpoint), (self: this, endpoint));

    public IReadOnlyList<CircuitSnapshot> Snapshot() => _circuits.Values.Select(c => c.Snapshot()).OrderBy(s => s.Endpoint, StringComparer.Ordinal).ToArray();

    public void Clear()
    {
        foreach (var key in _circuits.Keys)
        {
            if (_circuits.TryRemove(key, out var c))
            {
                c.Stop();
            }
        }
    }

    public void Dispose() => Clear();

    /// <summary>
    /// One endpoint's circuit: admits user requests while closed, records their outcomes, and while open runs the
    /// background probe loop (never in a user's request path).
    /// </summary>
    internal sealed class CloudCircuit
    {
        private readonly CircuitRegistry _owner;
        private readonly CancellationTokenSource _stop = new();
        private BackendEndpoint _endpoint;

        public CloudCircuit(CircuitRegistry owner, BackendEndpoint endpoint)
        {
            _owner = owner;
            _endpoint = endpoint;
            Display = endpoint.Display;
            Controller = new CircuitStateController(owner._time, owner._options);
        }

        public string Display { get; }

        public CircuitStateController Controller { get; }

        /// <summary>
        /// Runs one user attempt through the circuit: skipped while open (or cooling down after a Retry-After), else
        /// sent, and its outcome recorded. <paramref name="probeInterval"/> sets this endpoint's probe interval;
        /// probes use <paramref name="probeWith"/> (default: <paramref name="ep"/>), the endpoint with its full timeouts.
        /// </summary>
        public async Task<AttemptResult> ExecuteAsync(BackendEndpoint ep, TimeSpan? probeInterval, Func<BackendEndpoint, CancellationToken, Task<AttemptResult>> attempt,
            CancellationToken cancellationToken, BackendEndpoint? probeWith = null)
        {
            if (probeInterval is { } pi)
            {
                Controller.ProbeInterval = pi;
            }

            if (!Controller.TryAdmit(out var nextProbe, out var coolingDown))
            {
                if (coolingDown is { } until)
                {
                    return SkippedAttempt.Create(ep, FailureClass.CoolingDown, $"the cloud asked us to wait until {until:u} (Retry-After)");
                }

                EnsureProbing();
                return SkippedAttempt.Create(ep, FailureClass.CircuitOpen,
                    $"the circuit is open ({Controller.Reason}); the cloud is probed in the background, next probe at {nextProbe:HH:mm:ss.f}Z");
            }

            Volatile.Write(ref _endpoint, probeWith ?? ep);
            var result = await attempt(ep, cancellationToken).ConfigureAwait(false);
            var d = result.Decision;
            var outcome = d is null || !d.CountsForBreaker ? CircuitOutcome.Success
                : IsSilent(result) ? CircuitOutcome.SilentFailure
                : CircuitOutcome.Failure;
            var transition = Controller.Record(outcome, d?.Class.ToString(), d?.RetryAfter);
            Announce(transition);
            return result;
        }

        /// <summary>Remembers a Retry-After the cloud sent with a failure that is not retried.</summary>
        public void CoolDownFor(AttemptResult result)
        {
            if (result.Decision is { RetryAfter: { } wait } d && wait > TimeSpan.Zero &&
                d.Class is FailureClass.RateLimited or FailureClass.Overloaded or FailureClass.ServerError or FailureClass.QuotaExhausted)
            {
                Controller.CoolDown(_owner._time.GetUtcNow() + wait);
            }
        }

        public CircuitSnapshot Snapshot() => Controller.Snapshot(Display);

        public void Stop()
        {
            try
            {
                _stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        /// <summary>A timeout with no answer at all (no status, no text): the route is silent.</summary>
        internal static bool IsSilent(AttemptResult r) =>
            !r.TextEmitted && r.Decision?.Class is FailureClass.Timeout or FailureClass.FirstTokenTimeout or FailureClass.ConnectTimeout;

        private void Announce(CircuitTransition transition)
        {
            var now = _owner._time.GetUtcNow();
            switch (transition)
            {
                case CircuitTransition.Opened:
                    // No Until: the circuit stays open until a probe finds the cloud answering, whenever that is.
                    _owner._raise(new(ContinuityEventKind.CircuitOpened, now, Display, Controller.Reason));
                    EnsureProbing();
                    break;
                case CircuitTransition.Closed:
                    _owner._raise(new(ContinuityEventKind.CircuitClosed, now, Display, "the cloud answered again"));
                    break;
            }
        }

        private void EnsureProbing()
        {
            if (!_stop.IsCancellationRequested && Controller.TryStartLoop())
            {
                _ = Task.Run(ProbeLoopAsync);
            }
        }

        private async Task ProbeLoopAsync()
        {
            var time = _owner._time;
            try
            {
                while (Controller.NextProbeDelayOrStop() is { } wait)
                {
                    if (wait > TimeSpan.Zero)
                    {
                        await Task.Delay(wait, time, _stop.Token).ConfigureAwait(false);
                    }

                    if (!Controller.TryBeginProbe())
                    {
                        continue;
                    }

                    ProbeResult r;
                    try
                    {
                        r = await _owner._prober.ProbeAsync(Volatile.Read(ref _endpoint), _stop.Token).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        r = new(false, "probe failed: " + e.GetType().Name, null);
                    }

                    Announce(Controller.EndProbe(r.Healthy, r.Detail, r.RetryAfter));
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Cancelled (Stop) or something unexpected: free the slot so the next request can start a loop.
                Controller.LoopStopped();
            }
        }
    }
}

/// <summary>An attempt decided without sending (circuit open, cooling down).</summary>
internal static class SkippedAttempt
{
    public static AttemptResult Create(BackendEndpoint ep, FailureClass cls, string detail) =>
        new(new AiAttempt { Backend = ep.Role.ToString(), Endpoint = ep.Display, Model = ep.Model, Outcome = "Skipped", FailureClass = cls.ToString(), Detail = detail },
            new FailureDecision(cls, true, detail));
}

/// <summary>What one attempt produced: the attempt record, and the text or the failure verdict.</summary>
internal sealed record AttemptResult(AiAttempt Attempt, FailureDecision? Decision, string? Text = null, string? Model = null, int? InputTokens = null, int? OutputTokens = null, bool TextEmitted = false)
{
    public bool Succeeded => Decision is null;

    /// <summary>Why the answer ended (see <see cref="AiResponse.FinishReason"/>), and the reasoning kept with IncludeThinking.</summary>
    public string? FinishReason { get; init; }
    public string? Thinking { get; init; }
}
