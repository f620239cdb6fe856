using System.Collections.Concurrent;
using Polly;
using Polly.CircuitBreaker;

namespace OllamaContinuity.Failover;

/// <summary>
/// Circuit-breaker settings for the cloud endpoints. The circuit opens when, within <see cref="SamplingDuration"/>,
/// at least <see cref="MinimumThroughput"/> requests were made and at least <see cref="FailureRatio"/> of them failed
/// on the cloud's side: during an outage that is the third consecutive failure.
/// </summary>
public sealed record CircuitOptions
{
    /// <summary>The default value is 0.5.</summary>
    public double FailureRatio { get; init; } = 0.5;

    /// <summary>The default value is 3.</summary>
    public int MinimumThroughput { get; init; } = 3;

    /// <summary>The default value is 30 seconds.</summary>
    public TimeSpan SamplingDuration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the cloud is skipped once the circuit opens, unless the cloud sent a Retry-After. The default value is 30 seconds.</summary>
    public TimeSpan BreakDuration { get; init; } = TimeSpan.FromSeconds(30);

    internal void Validate()
    {
        if (FailureRatio is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(FailureRatio), "FailureRatio must be in (0, 1].");
        if (MinimumThroughput < 2) throw new ArgumentOutOfRangeException(nameof(MinimumThroughput), "MinimumThroughput must be at least 2.");
        if (SamplingDuration < TimeSpan.FromMilliseconds(500)) throw new ArgumentOutOfRangeException(nameof(SamplingDuration), "SamplingDuration must be at least 0.5 s.");
        if (BreakDuration < TimeSpan.FromMilliseconds(500)) throw new ArgumentOutOfRangeException(nameof(BreakDuration), "BreakDuration must be at least 0.5 s.");
    }
}

/// <summary>The state of one cloud endpoint's circuit, as Get-AiContingency shows it.</summary>
public sealed record CircuitSnapshot(string Endpoint, string State, DateTimeOffset? Since, DateTimeOffset? Until, string? Reason);

/// <summary>One circuit per cloud endpoint (scheme, host, port, path), shared by every request of the session.</summary>
internal sealed class CircuitRegistry
{
    internal static readonly ResiliencePropertyKey<TimeSpan> RetryAfterKey = new("OllamaContinuity.RetryAfter");
    private readonly ConcurrentDictionary<string, CloudCircuit> _circuits = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly CircuitOptions _options;
    private readonly Action<ContinuityEvent> _raise;

    public CircuitRegistry(TimeProvider time, CircuitOptions options, Action<ContinuityEvent> raise)
    {
        options.Validate();
        _time = time;
        _options = options;
        _raise = raise;
    }

    public CloudCircuit Get(BackendEndpoint endpoint) =>
        _circuits.GetOrAdd(endpoint.CircuitKey, static (_, s) => new CloudCircuit(s.self, s.endpoint.Display), (self: this, endpoint));

    public IReadOnlyList<CircuitSnapshot> Snapshot() => _circuits.Values.Select(c => c.Snapshot()).OrderBy(s => s.Endpoint, StringComparer.Ordinal).ToArray();

    public void Clear() => _circuits.Clear();

    internal sealed class CloudCircuit
    {
        private readonly object _lock = new();
        private readonly CircuitRegistry _owner;
        private readonly CircuitBreakerStateProvider _state = new();
        private DateTimeOffset? _since;
        private DateTimeOffset? _until;
        private string? _reason;
        private DateTimeOffset? _coolDownUntil;

        public CloudCircuit(CircuitRegistry owner, string display)
        {
            _owner = owner;
            Display = display;
            var o = owner._options;
            Pipeline = new ResiliencePipelineBuilder<AttemptResult> { TimeProvider = owner._time }
                .AddCircuitBreaker(new CircuitBreakerStrategyOptions<AttemptResult>
                {
                    FailureRatio = o.FailureRatio,
                    MinimumThroughput = o.MinimumThroughput,
                    SamplingDuration = o.SamplingDuration,
                    BreakDuration = o.BreakDuration,
                    StateProvider = _state,
                    ShouldHandle = static args => new(args.Outcome.Result?.Decision?.CountsForBreaker == true),
                    BreakDurationGenerator = args =>
                        new(args.Context.Properties.TryGetValue(RetryAfterKey, out var ra) && ra > TimeSpan.FromMilliseconds(500) ? ra : o.BreakDuration),
                    OnOpened = args =>
                    {
                        var now = _owner._time.GetUtcNow();
                        var reason = args.Outcome.Result?.Decision?.Class.ToString() ?? "failures";
                        lock (_lock)
                        {
                            _since = now;
                            _until = now + args.BreakDuration;
                            _reason = reason;
                        }

                        _owner._raise(new(ContinuityEventKind.CircuitOpened, now, Display, reason, now + args.BreakDuration));
                        return default;
                    },
                    OnHalfOpened = _ =>
                    {
                        _owner._raise(new(ContinuityEventKind.CircuitHalfOpened, _owner._time.GetUtcNow(), Display, "probing the cloud"));
                        return default;
                    },
                    OnClosed = _ =>
                    {
                        lock (_lock)
                        {
                            _since = _until = null;
                            _reason = null;
                        }

                        _owner._raise(new(ContinuityEventKind.CircuitClosed, _owner._time.GetUtcNow(), Display, "the cloud answered again"));
                        return default;
                    },
                })
                .Build();
        }

        public string Display { get; }

        public ResiliencePipeline<AttemptResult> Pipeline { get; }

        /// <summary>When the cloud asked us (Retry-After) to stay away until a time, that time.</summary>
        public DateTimeOffset? CoolingDownUntil(DateTimeOffset now)
        {
            lock (_lock)
            {
                return _coolDownUntil > now ? _coolDownUntil : null;
            }
        }

        public void CoolDown(DateTimeOffset until)
        {
            lock (_lock)
            {
                if (_coolDownUntil is null || until > _coolDownUntil)
                {
                    _coolDownUntil = until;
                }
            }
        }

        public CircuitSnapshot Snapshot()
        {
            var now = _owner._time.GetUtcNow();
            lock (_lock)
            {
                return _state.CircuitState switch
                {
                    CircuitState.Open or CircuitState.Isolated => new(Display, "Open", _since, _until, _reason),
                    CircuitState.HalfOpen => new(Display, "HalfOpen", _since, _until, _reason),
                    _ when _coolDownUntil > now => new(Display, "CoolingDown", null, _coolDownUntil, "Retry-After"),
                    _ => new(Display, "Closed", null, null, null),
                };
            }
        }
    }
}

/// <summary>What one attempt produced: the attempt record, and the text or the failure verdict.</summary>
internal sealed record AttemptResult(AiAttempt Attempt, FailureDecision? Decision, string? Text = null, string? Model = null, int? InputTokens = null, int? OutputTokens = null, bool TextEmitted = false)
{
    public bool Succeeded => Decision is null;

    /// <summary>Why the answer ended (see <see cref="AiResponse.FinishReason"/>), and the reasoning kept with IncludeThinking.</summary>
    public string? FinishReason { get; init; }
    public string? Thinking { get; init; }
}
