namespace OllamaContinuity.Failover;

/// <summary>What happens when a stream breaks after answer text was shown (cut, stall, in-band error, a bound crossed).</summary>
public enum StreamRescueMode
{
    /// <summary>The next backend answers the whole request from scratch; the caller sees a one-line notice where the broken text stopped. The default.</summary>
    Restart,
    /// <summary>The next backend continues the partial answer (sent as the last assistant message); if it rejects that, it restarts.</summary>
    Continue,
    /// <summary>No rescue: the request fails as StreamInterrupted with the partial text.</summary>
    None,
}
