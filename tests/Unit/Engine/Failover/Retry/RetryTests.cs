using System.Diagnostics;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover.Retry;

/// <summary>Retry before failover, within budget, on real loopback sockets.</summary>
public sealed class RetryTests : StandInBackendsTest
{
    private readonly RecordingObserver _observer = new();

    /// <summary>A cloud budget that has room for a 2 s Retry-After.</summary>
    private static readonly BackendTimeouts Roomy = new() { Connect = TimeSpan.FromSeconds(2), FirstToken = TimeSpan.FromSeconds(3), Total = TimeSpan.FromSeconds(5) };

    private BackendPlan Plan(BackendTimeouts? t = null, CloudRetryOptions? retry = null) =>
        Harness.Plan(Harness.Cloud(Cloud, t ?? Roomy), Harness.TempLog(), Harness.Ollama(Ollama)) with { Retry = retry };

    [Theory]
    [InlineData(429, "retry-after", "2", "RateLimited")]
    [InlineData(503, "retry-after", "2", "ServerError")]
    [InlineData(529, "retry-after-ms", "2000", "Overloaded")]
    public async Task A_retry_after_of_2_s_is_waited_for_and_the_cloud_serves_the_request(int status, string header, string value, string cls)
    {
        using var engine = new FailoverEngine();
        Cloud.Script = n => n == 1 ? FaultSpec.Http(status, null, (header, value)) : FaultSpec.Ok;
        var sw = Stopwatch.StartNew();

        var r = await engine.SendAsync(Harness.Request("q"), Plan(), _observer);

        Assert.Equal("Cloud", r.Backend);
        Assert.Equal("", r.FailoverReason);
        Assert.Equal(2, Cloud.Hits);
        Assert.Equal(0, Ollama.Hits);
        Assert.InRange(sw.Elapsed.TotalSeconds, 1.9, 4);
        Assert.Collection(r.Attempts,
            a => { Assert.Equal("Failed", a.Outcome); Assert.Equal(cls, a.FailureClass); Assert.Equal(status, a.StatusCode); },
            a => Assert.Equal("Success", a.Outcome));
        Assert.Contains(_observer.Verbose, v => v.Contains("retry in 2 s", StringComparison.Ordinal));
        Assert.DoesNotContain(_observer.Verbose, v => v.StartsWith(FailoverEngine.FailoverLine, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(500)]
    [InlineData(502)]
    [InlineData(503)]
    [InlineData(504)]
    public async Task A_single_5xx_is_retried_at_once(int status)
    {
        using var engine = new FailoverEngine();
        Cloud.Script = n => n == 1 ? FaultSpec.Http(status) : FaultSpec.Ok;

        var r = await engine.SendAsync(Harness.Request(), Plan(), _observer);

        Assert.Equal("Cloud", r.Backend);
        Assert.Equal(["Cloud:ServerError/" + status, "Cloud:Success"], r.Attempts.Select(a => a.ToString()!.Split('(')[0]));
        // No wait between the tries (the time not spent in either attempt is bookkeeping, not a back-off).
        Assert.True(r.LatencyMs - r.Attempts[0].LatencyMs - r.Attempts[1].LatencyMs < 500, $"{r.LatencyMs} ms in all for {r.Route}");
        Assert.Contains(_observer.Verbose, v => v.Contains("failed once", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_reset_connection_is_retried_at_once()
    {
        using var engine = new FailoverEngine();
        Cloud.Script = n => n == 1 ? new FaultSpec(FaultKind.ResetBeforeHeaders) : FaultSpec.Ok;

        var r = await engine.SendAsync(Harness.Request(), Plan());

        Assert.Equal("Cloud", r.Backend);
        Assert.Equal(["ConnectionReset", ""], r.Attempts.Select(a => a.FailureClass));
    }

    [Fact]
    public async Task A_second_failure_fails_over_and_the_attempts_show_both_tries()
    {
        using var engine = new FailoverEngine();
        Cloud.Fault = FaultSpec.Http(500);

        var r = await engine.SendAsync(Harness.Request(), Plan());

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("ServerError", r.FailoverReason);
        Assert.Equal(["Cloud", "Cloud", "Ollama"], r.Attempts.Select(a => a.Backend));
        Assert.Equal(2, Cloud.Hits);
    }

    public static TheoryData<string, FaultSpec> NotRetried => new()
    {
        { "a Retry-After longer than the maximum", FaultSpec.Http(429, null, ("retry-after", "5")) },
        { "a 429 that does not say when", FaultSpec.Http(429) },
        { "an exhausted quota", FaultSpec.Http(429, """{"error":{"code":"insufficient_quota","message":"You exceeded your current quota"}}""", ("retry-after", "1")) },
        { "a rejected key", FaultSpec.Http(401) },
        { "a timeout (a silent route)", new FaultSpec(FaultKind.Blackhole) },
        { "a malformed answer", new FaultSpec(FaultKind.MalformedJson) },
    };

    [Theory]
    [MemberData(nameof(NotRetried))]
    public async Task Fails_over_at_once_on(string why, FaultSpec fault)
    {
        using var engine = new FailoverEngine();
        Cloud.Script = n => n == 1 ? fault : FaultSpec.Ok;
        var t = new BackendTimeouts { Connect = TimeSpan.FromSeconds(2), Total = TimeSpan.FromSeconds(1) };

        var r = await engine.SendAsync(Harness.Request(), Plan(t));

        Assert.True(r.Backend == "Ollama", why);
        Assert.Equal(1, Cloud.Hits);
        Assert.Equal(["Cloud", "Ollama"], r.Attempts.Select(a => a.Backend));
    }

    [Fact]
    public async Task Never_waits_beyond_the_clouds_total_timeout()
    {
        using var engine = new FailoverEngine();
        Cloud.Script = n => n == 1 ? FaultSpec.Http(503, null, ("retry-after", "2")) : FaultSpec.Ok;
        var sw = Stopwatch.StartNew();

        var r = await engine.SendAsync(Harness.Request(), Plan(new BackendTimeouts { Connect = TimeSpan.FromSeconds(1), Total = TimeSpan.FromSeconds(2) }));

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal(1, Cloud.Hits);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(1.5), $"took {sw.Elapsed}");
    }

    [Fact]
    public async Task The_retry_gets_only_what_is_left_of_the_budget()
    {
        using var engine = new FailoverEngine();
        // Retry-After 1 s within a 2 s budget: the retry has about 1 s, and this retry is slower than that.
        Cloud.Script = n => n == 1 ? FaultSpec.Http(503, null, ("retry-after", "1")) : new FaultSpec(FaultKind.SlowFirstByte) { Delay = TimeSpan.FromSeconds(3) };
        var sw = Stopwatch.StartNew();

        var r = await engine.SendAsync(Harness.Request(), Plan(new BackendTimeouts { Connect = TimeSpan.FromSeconds(1), Total = TimeSpan.FromSeconds(2) }));

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal(["ServerError", "Timeout", ""], r.Attempts.Select(a => a.FailureClass));
        Assert.InRange(sw.Elapsed.TotalSeconds, 1.8, 2.9);
    }

    [Fact]
    public async Task No_retry_when_the_failure_opened_the_circuit()
    {
        using var engine = new FailoverEngine();
        Cloud.Fault = FaultSpec.Http(500);
        await engine.SendAsync(Harness.Request(), Plan(retry: CloudRetryOptions.None));
        await engine.SendAsync(Harness.Request(), Plan(retry: CloudRetryOptions.None));

        var r = await engine.SendAsync(Harness.Request(), Plan());

        Assert.Equal(["Cloud", "Ollama"], r.Attempts.Select(a => a.Backend));
        Assert.Equal("Open", engine.GetCircuits()[0].State);
        Assert.Equal("CircuitOpen", (await engine.SendAsync(Harness.Request(), Plan())).FailoverReason);
    }

    [Fact]
    public async Task MaxRetryAfter_of_zero_waits_only_for_an_immediate_retry_after()
    {
        using var engine = new FailoverEngine();
        Cloud.Script = n => n == 1 ? FaultSpec.Http(429, null, ("retry-after", "1")) : FaultSpec.Ok;
        var r = await engine.SendAsync(Harness.Request(), Plan(retry: new CloudRetryOptions { MaxRetryAfter = TimeSpan.Zero }));
        Assert.Equal("Ollama", r.Backend);

        Cloud.Script = n => n == 2 ? FaultSpec.Http(429, null, ("retry-after", "0")) : FaultSpec.Ok;
        engine.ResetCircuits();
        Assert.Equal("Cloud", (await engine.SendAsync(Harness.Request(), Plan(retry: new CloudRetryOptions { MaxRetryAfter = TimeSpan.Zero }))).Backend);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(61)]
    public void MaxRetryAfter_outside_0_to_60_s_is_refused(int seconds) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new CloudRetryOptions { MaxRetryAfter = TimeSpan.FromSeconds(seconds) });
}
