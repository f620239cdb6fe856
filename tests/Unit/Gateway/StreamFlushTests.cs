using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>
/// How the gateway sends a relayed stream: pieces that arrived from the backend together go out in one flush (one
/// send), and nothing waits for the backend's next piece. Every flush of the response is counted by a body feature
/// put between the gateway and Kestrel.
/// </summary>
public sealed class StreamFlushTests
{
    private const string StreamRequest = """{"model":"ollamacontinuity","stream":true,"messages":[{"role":"user","content":"hi"}]}""";

    [SkippableFact]
    public async Task A_burst_from_the_backend_is_relayed_in_one_flush_not_one_per_piece()
    {
        var spec = WireFixture.Spec("oa_st_basic.sse") with { Words = 1 << 20 };
        var flushes = new FlushCounter();
        await using var g = await GatewayHarness.StartAsync(beforeStart: flushes.Install);
        g.Cloud.Fault = spec;

        var (r, body) = await g.SendAsync(g.Post("/v1/chat/completions", StreamRequest));

        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var deltas = GatewayHarness.OpenAIDeltas(body);
        Assert.True(deltas.Count >= 5, body);
        // Before: one flush per piece (as many as deltas). Now the pieces and the end go out together.
        Assert.InRange(flushes.Of("/v1/chat/completions"), 1, 2);
    }

    [Fact]
    public async Task Text_reaches_the_client_while_the_backend_is_still_silent()
    {
        var flushes = new FlushCounter();
        await using var g = await GatewayHarness.StartAsync(beforeStart: flushes.Install,
            cloudTimeouts: new BackendTimeouts { Connect = TimeSpan.FromSeconds(2), FirstToken = TimeSpan.FromSeconds(5), Stall = TimeSpan.FromSeconds(5), Total = TimeSpan.FromSeconds(30) });
        g.Cloud.Answer = _ => "one two three four five";
        g.Cloud.Fault = new FaultSpec(FaultKind.StallAfterWords) { Words = 3 };

        using var request = g.Post("/v1/chat/completions", StreamRequest);
        using var r = await g.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        await using var s = await r.Content.ReadAsStreamAsync();
        var seen = new StringBuilder();
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!string.Concat(GatewayHarness.OpenAIDeltas(seen.ToString())).StartsWith("one two three", StringComparison.Ordinal))
        {
            var n = await s.ReadAsync(buffer, cts.Token);
            Assert.True(n > 0, "the stream ended before the first three words: " + seen);
            seen.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        // The three words are here while the cloud is still silent: its stall timeout (5 s) has not sent the request on.
        Assert.Equal(0, g.Ollama.Hits);
        Assert.True(flushes.Of("/v1/chat/completions") >= 1);
    }

    /// <summary>Counts the FlushAsync calls on each request's response body writer, by path.</summary>
    private sealed class FlushCounter
    {
        private readonly ConcurrentDictionary<string, int> _counts = new();

        public int Of(string path) => _counts.GetValueOrDefault(path);

        public void Install(WebApplication app) => app.Use(async (ctx, next) =>
        {
            var inner = ctx.Features.Get<IHttpResponseBodyFeature>()!;
            ctx.Features.Set<IHttpResponseBodyFeature>(new CountingBody(inner, () => _counts.AddOrUpdate(ctx.Request.Path.Value ?? "", 1, (_, n) => n + 1)));
            try
            {
                await next(ctx);
            }
            finally
            {
                ctx.Features.Set(inner);
            }
        });
    }

    private sealed class CountingBody(IHttpResponseBodyFeature inner, Action flushed) : IHttpResponseBodyFeature
    {
        private PipeWriter? _writer;

        public Stream Stream => inner.Stream;

        public PipeWriter Writer => _writer ??= new CountingWriter(inner.Writer, flushed);

        public Task CompleteAsync() => inner.CompleteAsync();

        public void DisableBuffering() => inner.DisableBuffering();

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => inner.SendFileAsync(path, offset, count, cancellationToken);

        public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);
    }

    private sealed class CountingWriter(PipeWriter inner, Action flushed) : PipeWriter
    {
        public override void Advance(int bytes) => inner.Advance(bytes);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            flushed();
            return inner.FlushAsync(cancellationToken);
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;
    }
}
