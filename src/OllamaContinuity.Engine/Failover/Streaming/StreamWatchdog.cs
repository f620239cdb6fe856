namespace OllamaContinuity.Failover.Streaming;

/// <summary>
/// The first-token, then stall, timer of one streamed attempt. Any sign of life (answer text or reasoning) re-arms
/// it with the stall timeout; silence for that long cancels <see cref="Token"/>.
/// </summary>
internal sealed class StreamWatchdog : IDisposable
{
    private readonly CancellationTokenSource _cts;
    private readonly TimeSpan _stall;

    public StreamWatchdog(BackendTimeouts timeouts, TimeProvider time)
    {
        _cts = new CancellationTokenSource(timeouts.EffectiveFirstToken, time);
        _stall = timeouts.EffectiveStall;
    }

    public CancellationToken Token => _cts.Token;

    public bool Fired => _cts.IsCancellationRequested;

    /// <summary>FirstToken until the first sign of life, then Stall.</summary>
    public TimeoutPhase Phase { get; private set; } = TimeoutPhase.FirstToken;

    public void Alive()
    {
        Phase = TimeoutPhase.Stall;
        _cts.CancelAfter(_stall);
    }

    public void Dispose() => _cts.Dispose();
}
