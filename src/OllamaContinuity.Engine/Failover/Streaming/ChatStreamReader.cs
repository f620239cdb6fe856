using System.Text;
using OllamaContinuity.Failover.Protocols;

namespace OllamaContinuity.Failover.Streaming;

/// <summary>What a stream produced so far (also after it broke: the partial text is kept).</summary>
internal sealed class StreamProgress(bool keepThinking)
{
    public StringBuilder Text { get; } = new();
    public StringBuilder? Thinking { get; } = keepThinking ? new() : null;
    public string? Model;
    public int? InputTokens;
    public int? OutputTokens;
    public string? FinishReason;
    public int BadEvents;

    /// <summary>Answer text reached the caller (a break after this is a mid-stream break).</summary>
    public bool TextEmitted;
}

/// <summary>
/// Reads one streamed answer event by event: text to the caller, reasoning kept apart (and counted as a sign of life),
/// a few unparseable events skipped and counted, and the decision whether the stream completed.
/// </summary>
internal static class ChatStreamReader
{
    /// <summary>Unparseable events skipped before the stream counts as broken.</summary>
    public const int MaxBadEvents = 5;

    /// <summary>Reads to the end. Null: a complete answer in <paramref name="p"/>; otherwise why it failed. I/O and bound errors are thrown.</summary>
    public static async Task<FailureDecision?> ReadAsync(ChatProtocol protocol, Stream body, ResponseLimits limits, StreamProgress p, StreamWatchdog watchdog,
        IFailoverObserver? observer, CancellationToken ct)
    {
        var idle = observer is null ? null : new IdleSignal(observer);
        try
        {
            var failed = await ReadCoreAsync(protocol, body, limits, p, watchdog, observer, idle, ct).ConfigureAwait(false);
            if (failed is not null)
            {
                // What the broken stream did deliver goes out now, not after the next backend's first piece.
                idle?.Announce();
            }

            return failed;
        }
        catch
        {
            idle?.Announce();
            throw;
        }
    }

    /// <summary>Tells the observer once after each run of text that nothing more is ready (<see cref="IFailoverObserver.OnStreamIdle"/>).</summary>
    private sealed class IdleSignal(IFailoverObserver observer)
    {
        /// <summary>Text was handed over since the observer was last told.</summary>
        public bool Pending;

        public void Announce()
        {
            if (Pending)
            {
                Pending = false;
                observer.OnStreamIdle();
            }
        }
    }

    private static async Task<FailureDecision?> ReadCoreAsync(ChatProtocol protocol, Stream body, ResponseLimits limits, StreamProgress p, StreamWatchdog watchdog,
        IFailoverObserver? observer, IdleSignal? idle, CancellationToken ct)
    {
        using var reader = new LineReader(body, limits.MaxLineBytes, idle is null ? null : idle.Announce);
        string? sseEvent = null;
        string? lastBad = null;
        while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
        {
            var chunk = protocol.ParseStreamLine(line, ref sseEvent);
            p.Model ??= chunk.Model;
            p.InputTokens = chunk.InputTokens ?? p.InputTokens;
            p.OutputTokens = chunk.OutputTokens ?? p.OutputTokens;
            p.FinishReason = chunk.FinishReason ?? p.FinishReason;
            if (!string.IsNullOrEmpty(chunk.Thinking))
            {
                watchdog.Alive();
                p.Thinking?.Append(chunk.Thinking);
            }

            switch (chunk.Kind)
            {
                case ChunkKind.Text:
                case ChunkKind.Done:
                    if (!string.IsNullOrEmpty(chunk.Text))
                    {
                        p.TextEmitted = true;
                        watchdog.Alive();
                        p.Text.Append(chunk.Text);
                        observer?.OnToken(chunk.Text);
                        if (idle is not null)
                        {
                            idle.Pending = true;
                        }
                    }

                    if (chunk.Kind == ChunkKind.Done)
                    {
                        return Completed(p);
                    }

                    break;
                case ChunkKind.Error:
                    return FailoverClassifier.FromBody(FailureClass.StreamError, "in-band stream error: " + chunk.Error, p.TextEmitted);
                case ChunkKind.Refusal:
                    return FailoverClassifier.FromBody(FailureClass.ContentPolicy, chunk.Error!, p.TextEmitted);
                case ChunkKind.Malformed:
                    lastBad = chunk.Error;
                    if (++p.BadEvents > MaxBadEvents)
                    {
                        return FailoverClassifier.FromBody(FailureClass.MalformedResponse, $"more than {MaxBadEvents} unparseable stream events (last: {lastBad})", p.TextEmitted);
                    }

                    break;
            }
        }

        // The body ended cleanly. After a finish reason the answer is complete even without [DONE]/message_stop.
        if (p.FinishReason is not null)
        {
            return Completed(p);
        }

        if (p.Text.Length == 0 && p.BadEvents > 0)
        {
            return FailoverClassifier.FromBody(FailureClass.MalformedResponse, $"no valid content, {p.BadEvents} unparseable stream event(s) (last: {lastBad})", false);
        }

        return FailoverClassifier.FromBody(FailureClass.StreamTruncated, "the stream ended without a finish reason or its terminator", p.TextEmitted);
    }

    private static FailureDecision? Completed(StreamProgress p) =>
        p.Text.Length > 0 ? null
        : p.BadEvents > 0 ? FailoverClassifier.FromBody(FailureClass.MalformedResponse, $"no valid content, {p.BadEvents} unparseable stream event(s)", false)
        : FailoverClassifier.FromBody(FailureClass.EmptyResponse, "the stream carried no text", false);
}
