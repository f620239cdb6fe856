namespace OllamaContinuity.Failover.Circuit;

/// <summary>How one cloud attempt counts for the circuit.</summary>
internal enum CircuitOutcome
{
    /// <summary>The cloud answered (an answer, or a verdict on the request itself such as a 400 or a refusal).</summary>
    Success,
    /// <summary>A cloud-side failure with some answer (a 5xx, a reset, a broken stream).</summary>
    Failure,
    /// <summary>A timeout with no answer at all: connect, first-token or total, before any text.</summary>
    SilentFailure,
}

/// <summary>What a call changed.</summary>
internal enum CircuitTransition
{
    None,
    Opened,
    Closed,
}

/// <summary>
/// The state machine of one cloud endpoint's circuit: the open rules (consecutive, silent, ratio), the probe schedule
/// (at most one in flight, at most one per interval), and Retry-After cool-downs. Thread-safe; every member takes the
/// lock, helpers named <c>_NeedsLock</c> expect it held. Never does I/O.
/// </summary>
internal sealed class CircuitStateController
{
    private readonly object _lock = new();
    private readonly TimeProvider _time;
    private readonly CircuitOptions _options;
    private readonly RollingFailureWindow _window;
    private TimeSpan _probeInterval;

    private bool _open;
    private int _consecutive;
    private int _silent;
    private DateTimeOffset? _openedAt;
    private string? _reason;
    private DateTimeOffset _nextProbe;
    private bool _probeInFlight;
    private bool _loopRunning;
    private int _probes;
    private DateTimeOffset? _lastProbe;
    private string? _lastProbeResult;
    private DateTimeOffset _lastDemand;
    private DateTimeOffset? _coolDownUntil;

    public CircuitStateController(TimeProvider time, CircuitOptions options)
    {
        _time = time;
        _options = options;
        _probeInterval = options.ProbeInterval;
        _window = new RollingFailureWindow(options.SamplingDuration);
        _lastDemand = time.GetUtcNow();
    }

    public bool IsOpen
    {
        get
        {
            lock (_lock)
            {
                return _open;
            }
        }
    }

    public string? Reason
    {
        get
        {
            lock (_lock)
            {
                return _reason;
            }
        }
    }

    /// <summary>The interval between probes (a request's -ProbeIntervalSec sets it for its endpoint).</summary>
    public TimeSpan ProbeInterval
    {
        get
        {
            lock (_lock)
            {
                return _probeInterval;
            }
        }
        set
        {
            CircuitOptions.ValidateProbeInterval(value, nameof(ProbeInterval));
            lock (_lock)
            {
                if (value != _probeInterval)
                {
                    // A shorter interval takes effect for the probe already scheduled.
                    if (_open && !_probeInFlight && _nextProbe - _probeInterval + value < _nextProbe)
                    {
                        _nextProbe = _nextProbe - _probeInterval + value;
                    }

                    _probeInterval = value;
                }
            }
        }
    }

    /// <summary>May a user request go to the cloud now? False while open. Records the demand that keeps probes going.</summary>
    public bool TryAdmit(out DateTimeOffset? nextProbe, out DateTimeOffset? coolingDownUntil)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            _lastDemand = now;
            nextProbe = _open ? _nextProbe : null;
            coolingDownUntil = !_open && _coolDownUntil > now ? _coolDownUntil : null;
            return !_open && coolingDownUntil is null;
        }
    }

    /// <summary>Records a user request's outcome. <paramref name="reason"/> names the failure class.</summary>
    public CircuitTransition Record(CircuitOutcome outcome, string? reason = null, TimeSpan? retryAfter = null)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (outcome == CircuitOutcome.Success)
            {
                _consecutive = 0;
                _silent = 0;
                if (_open)
                {
                    // A request that was already on the wire when the circuit opened came back fine: as good as a probe.
                    Close_NeedsLock();
                    return CircuitTransition.Closed;
                }

                _window.Record(now, false);
                return CircuitTransition.None;
            }

            if (_open)
            {
                // Late failures of requests sent before the circuit opened change nothing.
                return CircuitTransition.None;
            }

            _consecutive++;
            _silent = outcome == CircuitOutcome.SilentFailure ? _silent + 1 : 0;
            _window.Record(now, true);
            var (total, failed) = _window.Sum(now);
            string? rule =
                _silent >= _options.SilentFailures ? $"{_silent} silent failures in a row (no answer before the timeout)"
                : _consecutive >= _options.ConsecutiveFailures ? $"{_consecutive} failures in a row"
                : total >= _options.MinimumThroughput && failed >= _options.FailureRatio * total ? $"{failed} of {total} requests failed within {_options.SamplingDuration.TotalSeconds:0.#} s"
                : null;
            if (rule is null)
            {
                return CircuitTransition.None;
            }

            _open = true;
            _openedAt = now;
            _reason = $"{reason ?? "failures"}: {rule}";
            _probes = 0;
            _lastProbe = null;
            _lastProbeResult = null;
            _nextProbe = Later(now + _probeInterval, retryAfter is { } ra ? now + ra : null);
            return CircuitTransition.Opened;
        }
    }

    /// <summary>Sets a Retry-After cool-down: a closed circuit skips the cloud until then; an open one probes no earlier.</summary>
    public void CoolDown(DateTimeOffset until)
    {
        lock (_lock)
        {
            if (_coolDownUntil is null || until > _coolDownUntil)
            {
                _coolDownUntil = until;
            }

            if (_open && !_probeInFlight && until > _nextProbe)
            {
                _nextProbe = until;
            }
        }
    }

    /// <summary>
    /// For the probe loop: how long until the next probe is due, or null when the loop should end (closed, or nobody
    /// asked for the cloud within the idle timeout). Ending clears the running flag under the same lock.
    /// </summary>
    public TimeSpan? NextProbeDelayOrStop()
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (!_open || now - _lastDemand > _options.ProbeIdleTimeout)
            {
                _loopRunning = false;
                return null;
            }

            var wait = _nextProbe - now;
            return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
        }
    }

    /// <summary>True when the caller should start the probe loop (open, and no loop running).</summary>
    public bool TryStartLoop()
    {
        lock (_lock)
        {
            if (!_open || _loopRunning)
            {
                return false;
            }

            _loopRunning = true;
            return true;
        }
    }

    /// <summary>The loop ended abnormally (cancelled): let the next request start another.</summary>
    public void LoopStopped()
    {
        lock (_lock)
        {
            _loopRunning = false;
            _probeInFlight = false;
        }
    }

    /// <summary>Claims the one probe slot when a probe is due.</summary>
    public bool TryBeginProbe()
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (!_open || _probeInFlight || now < _nextProbe)
            {
                return false;
            }

            _probeInFlight = true;
            _probes++;
            _lastProbe = now;
            return true;
        }
    }

    /// <summary>Records a probe's verdict: healthy closes the circuit; otherwise the next probe is one interval after this one started (or after the Retry-After).</summary>
    public CircuitTransition EndProbe(bool healthy, string result, TimeSpan? retryAfter)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            _probeInFlight = false;
            _lastProbeResult = result;
            if (!_open)
            {
                return CircuitTransition.None;
            }

            if (healthy)
            {
                Close_NeedsLock();
                return CircuitTransition.Closed;
            }

            var started = _lastProbe ?? now;
            _nextProbe = Later(Later(started + _probeInterval, now), retryAfter is { } ra ? now + ra : null);
            return CircuitTransition.None;
        }
    }

    public CircuitSnapshot Snapshot(string endpoint)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_open)
            {
                return new(endpoint, "Open", _openedAt, _nextProbe, _reason)
                {
                    LastProbe = _lastProbe, LastProbeResult = _lastProbeResult, NextProbe = _nextProbe, ProbeInFlight = _probeInFlight,
                    Probes = _probes, ConsecutiveFailures = _consecutive,
                };
            }

            return _coolDownUntil > now
                ? new(endpoint, "CoolingDown", null, _coolDownUntil, "Retry-After") { LastProbe = _lastProbe, LastProbeResult = _lastProbeResult, ConsecutiveFailures = _consecutive }
                : new(endpoint, "Closed", null, null, null) { LastProbe = _lastProbe, LastProbeResult = _lastProbeResult, ConsecutiveFailures = _consecutive };
        }
    }

    private void Close_NeedsLock()
    {
        _open = false;
        _openedAt = null;
        _reason = null;
        _consecutive = 0;
        _silent = 0;
        _window.Reset();
        _coolDownUntil = null;
    }

    private static DateTimeOffset Later(DateTimeOffset a, DateTimeOffset? b) => b is { } v && v > a ? v : a;
}
