namespace OllamaContinuity.Failover;

/// <summary>
/// Circuit-breaker settings for the cloud endpoints. The circuit opens on whichever rule trips first:
/// <see cref="ConsecutiveFailures"/> cloud-side failures in a row (the third consecutive failure in an outage),
/// <see cref="SilentFailures"/> timeouts in a row with no answer at all, or, within <see cref="SamplingDuration"/>,
/// at least <see cref="MinimumThroughput"/> requests of which at least <see cref="FailureRatio"/> failed. Earlier
/// successes never hide an outage: the consecutive rules ignore them. While the circuit is open no user request goes to
/// the cloud; a background probe (a fixed one-token request to the same model) asks it every <see cref="ProbeInterval"/>
/// and the first probe that succeeds closes the circuit.
/// </summary>
public sealed record CircuitOptions
{
    /// <summary>The default value is 0.5.</summary>
    public double FailureRatio { get; init; } = 0.5;

    /// <summary>The default value is 3.</summary>
    public int MinimumThroughput { get; init; } = 3;

    /// <summary>The default value is 30 seconds.</summary>
    public TimeSpan SamplingDuration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Cloud-side failures in a row that open the circuit, whatever succeeded before. The default value is 3.</summary>
    public int ConsecutiveFailures { get; init; } = 3;

    /// <summary>Silent failures (a timeout with no answer: connect, first-token or total) in a row that open the circuit. The default value is 2.</summary>
    public int SilentFailures { get; init; } = 2;

    /// <summary>
    /// The shortest time between two probes of an open circuit (a request's <see cref="BackendPlan.ProbeInterval"/>
    /// overrides it for that cloud endpoint). The default value is 2 seconds.
    /// </summary>
    public TimeSpan ProbeInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Probing stops when no request has wanted the cloud for this long (an idle session costs nothing); the next
    /// request starts it again (and is served by Ollama meanwhile). The default value is 5 minutes.
    /// </summary>
    public TimeSpan ProbeIdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    internal void Validate()
    {
        if (FailureRatio is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(FailureRatio), "FailureRatio must be in (0, 1].");
        if (MinimumThroughput < 2) throw new ArgumentOutOfRangeException(nameof(MinimumThroughput), "MinimumThroughput must be at least 2.");
        if (SamplingDuration < TimeSpan.FromMilliseconds(500)) throw new ArgumentOutOfRangeException(nameof(SamplingDuration), "SamplingDuration must be at least 0.5 s.");
        if (ConsecutiveFailures < 1) throw new ArgumentOutOfRangeException(nameof(ConsecutiveFailures), "ConsecutiveFailures must be at least 1.");
        if (SilentFailures < 1) throw new ArgumentOutOfRangeException(nameof(SilentFailures), "SilentFailures must be at least 1.");
        ValidateProbeInterval(ProbeInterval, nameof(ProbeInterval));
        if (ProbeIdleTimeout < TimeSpan.FromSeconds(1)) throw new ArgumentOutOfRangeException(nameof(ProbeIdleTimeout), "ProbeIdleTimeout must be at least 1 s.");
    }

    internal static void ValidateProbeInterval(TimeSpan value, string name)
    {
        if (value < TimeSpan.FromMilliseconds(100) || value > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(name, "The probe interval must be between 0.1 s and 1 hour.");
        }
    }
}

/// <summary>The state of one cloud endpoint's circuit, as Get-AiContingency shows it.</summary>
/// <param name="State">Closed, Open (the cloud is skipped and probed), or CoolingDown (closed, but the cloud asked us to wait: Retry-After).</param>
/// <param name="Since">When the circuit opened.</param>
/// <param name="Until">Open: when the next probe is due. CoolingDown: the end of the Retry-After.</param>
/// <param name="Reason">Why it opened: the failure class and the rule that tripped.</param>
public sealed record CircuitSnapshot(string Endpoint, string State, DateTimeOffset? Since, DateTimeOffset? Until, string? Reason)
{
    /// <summary>When the last probe started (null before the first one).</summary>
    public DateTimeOffset? LastProbe { get; init; }

    /// <summary>What the last probe found: Success, or the failure class and detail.</summary>
    public string? LastProbeResult { get; init; }

    /// <summary>When the next probe is due (open circuits only).</summary>
    public DateTimeOffset? NextProbe { get; init; }

    /// <summary>True while a probe is on the wire (never more than one per endpoint).</summary>
    public bool ProbeInFlight { get; init; }

    /// <summary>Probes sent since the circuit opened.</summary>
    public int Probes { get; init; }

    /// <summary>Cloud-side failures in a row so far (closed circuits).</summary>
    public int ConsecutiveFailures { get; init; }
}
