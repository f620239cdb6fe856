using System.Collections.Concurrent;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover;

/// <summary>
/// <see cref="IFailoverObserver.OnStreamIdle"/>: said once after each run of text that arrived together, before the
/// engine waits for the backend again, so that a relay (the gateway) can send pieces that arrived together in one
/// write and never holds text back while the backend is silent. Real sockets, real provider bytes.
/// </summary>
public sealed class StreamIdleTests : StandInBackendsTest
{
    private static AiRequest Streamed() => new() { Messages = [new ChatMessage("user", "hello")], Stream = true };

    [SkippableFact]
    public async Task Pieces_that_arrive_together_are_not_split_by_an_idle_call()
    {
        // The recorded stream's whole body in one chunk, one write: every piece is there when the first is read.
        Cloud.Fault = WireFixture.Spec("oa_st_basic.sse") with { Words = 1 << 20 };
        var observer = new Recorder();
        using var engine = new FailoverEngine();

        var r = await engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(Cloud, Harness.Relaxed), Harness.TempLog()), observer);

        var events = observer.Events.ToArray();
        var tokens = events.Count(e => e.StartsWith("token:", StringComparison.Ordinal));
        Assert.True(tokens >= 5, string.Join(" | ", events));
        Assert.Equal(r.Text, string.Concat(events.Where(e => e.StartsWith("token:", StringComparison.Ordinal)).Select(e => e["token:".Length..])));
        var first = Array.FindIndex(events, e => e.StartsWith("token:", StringComparison.Ordinal));
        var last = Array.FindLastIndex(events, e => e.StartsWith("token:", StringComparison.Ordinal));
        Assert.DoesNotContain("idle", events[first..last]);
    }

    [Fact]
    public async Task Text_is_followed_by_an_idle_call_before_the_engine_waits_on_a_silent_backend()
    {
        // Three words, then silence until the stall timeout; Ollama finishes the answer.
        Cloud.Fault = new FaultSpec(FaultKind.StallAfterWords) { Words = 3 };
        var observer = new Recorder();
        using var engine = new FailoverEngine();

        var r = await engine.SendAsync(Streamed(), Harness.Plan(Harness.Cloud(Cloud, Harness.Fast), Harness.TempLog(), Harness.Ollama(Ollama, Harness.Relaxed)), observer);

        Assert.Equal("Ollama", r.Backend);
        var events = observer.Events.ToArray();
        var failover = Array.IndexOf(events, "attempt:Ollama");
        Assert.True(failover > 0, string.Join(" | ", events));
        var cloudPart = events[..failover];
        Assert.Equal(3, cloudPart.Count(e => e.StartsWith("token:", StringComparison.Ordinal)));
        // The last thing the relay heard from the cloud's attempt: nothing more is coming now (flush what you have).
        Assert.Equal("idle", cloudPart.Last(e => e is "idle" || e.StartsWith("token:", StringComparison.Ordinal)));
        // Never two idle calls without text between them.
        for (var i = 1; i < events.Length; i++)
        {
            Assert.False(events[i] == "idle" && events[..i].LastOrDefault(e => e is "idle" || e.StartsWith("token:", StringComparison.Ordinal)) == "idle", string.Join(" | ", events));
        }
    }

    [Fact]
    public async Task A_stream_cut_after_text_says_idle_before_the_next_backend_starts()
    {
        Cloud.Fault = new FaultSpec(FaultKind.CutAfterWords) { Words = 4 };
        var observer = new Recorder();
        using var engine = new FailoverEngine();

        await engine.SendAsync(Streamed() with { StreamRescue = StreamRescueMode.Continue },
            Harness.Plan(Harness.Cloud(Cloud, Harness.Relaxed), Harness.TempLog(), Harness.Ollama(Ollama, Harness.Relaxed)), observer);

        var events = observer.Events.ToArray();
        var failover = Array.IndexOf(events, "attempt:Ollama");
        Assert.True(failover > 0, string.Join(" | ", events));
        Assert.Equal("idle", events[..failover].Last(e => e is "idle" || e.StartsWith("token:", StringComparison.Ordinal)));
    }

    private sealed class Recorder : IFailoverObserver
    {
        public ConcurrentQueue<string> Events { get; } = new();

        public void OnVerbose(string message)
        {
        }

        public void OnWarning(string message)
        {
        }

        public void OnToken(string text) => Events.Enqueue("token:" + text);

        public void OnStreamIdle() => Events.Enqueue("idle");

        public void OnAttemptStarted(BackendEndpoint endpoint, int index, int count) => Events.Enqueue("attempt:" + endpoint.Role);

        public ValueTask<bool> ApproveFailoverAsync(string question, CancellationToken cancellationToken) => new(false);
    }
}
