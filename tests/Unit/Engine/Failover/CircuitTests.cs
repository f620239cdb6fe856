using System.Diagnostics;
using Microsoft.Extensions.Time.Testing;
using OllamaContinuity.Failover;
using OllamaContinuity.Failover.Circuit;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover;

/// <summary>The circuit per cloud endpoint: opens on repeated failures, skips the cloud, probes, recovers. Time is controlled.</summary>
public sealed class CircuitTests
{
    private static FakeTimeProvider Clock() => new(new DateTimeOffset(2026, 11, 24, 8, 0, 0, TimeSpan.Zero));

    /// <summary>Waits (real time) until the engine's background probe has changed something.</summary>
    internal static async Task WaitUntil(Func<bool> condition, string what, double seconds = 5)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, "timed out waiting until " + what);
            await Task.Delay(10);
        }
    }

    private static BackendPlan NoRetry(BackendPlan p) => p with { Retry = CloudRetryOptions.None };

    [Fact]
    public async Task Three_failures_open_the_circuit_then_no_request_reaches_the_cloud_until_a_background_probe_closes_it()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        var clock = Clock();
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = clock });
        var events = new List<ContinuityEvent>();
        engine.StateChanged += e => { lock (events) { events.Add(e); } };
        var plan = NoRetry(Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama)));

        cloud.Fault = FaultSpec.Http(503);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("ServerError", (await engine.SendAsync(Harness.Request("user secret " + i), plan)).FailoverReason);
        }

        Assert.Equal(3, cloud.Hits);
        lock (events)
        {
            // No "until" in the alert: the outage lasts until a probe finds the cloud answering.
            Assert.Contains(events, e => e.Kind == ContinuityEventKind.CircuitOpened && e.Endpoint == plan.Cloud!.Display && e.Until == null && e.Reason == "ServerError: 3 failures in a row");
        }

        var snapshot = Assert.Single(engine.GetCircuits());
        Assert.Equal("Open", snapshot.State);
        Assert.Equal("ServerError: 3 failures in a row", snapshot.Reason);
        Assert.Equal(clock.GetUtcNow().AddSeconds(2), snapshot.NextProbe);

        // Open: the cloud is not contacted, even once it is healthy again, and the response says it was automatic contingency.
        cloud.Fault = FaultSpec.Ok;
        for (var i = 0; i < 5; i++)
        {
            var skipped = await engine.SendAsync(Harness.Request("user secret"), plan);
            Assert.Equal("CircuitOpen", skipped.FailoverReason);
            Assert.True(skipped.Contingency);
            Assert.Equal("Automatic", skipped.ContingencySource);
            Assert.Equal("Skipped", skipped.Attempts[0].Outcome);
            Assert.Contains("probed in the background", skipped.Attempts[0].Detail);
        }

        Assert.Equal(3, cloud.Hits);

        // One probe interval later the background probe asks the cloud; it answers, so the circuit closes.
        clock.Advance(TimeSpan.FromSeconds(2));
        await WaitUntil(() => engine.GetCircuits()[0].State == "Closed", "the probe closed the circuit");
        Assert.Equal(4, cloud.Hits);
        var probe = cloud.Requests.Last().Json!;
        Assert.Equal(CloudProber.Prompt, probe["messages"]![0]!["content"]!.GetValue<string>());
        Assert.Equal(1, probe["max_tokens"]!.GetValue<int>());
        Assert.Equal("cloud-model", probe["model"]!.GetValue<string>());
        Assert.DoesNotContain("user secret", cloud.Requests.Last().Body);
        lock (events)
        {
            Assert.Contains(events, e => e.Kind == ContinuityEventKind.CircuitClosed);
        }

        Assert.Equal("Success", engine.GetCircuits()[0].LastProbeResult);
        Assert.Equal("Cloud", (await engine.SendAsync(Harness.Request(), plan)).Backend);
        Assert.Equal(5, cloud.Hits);
    }

    [Fact]
    public async Task A_failed_probe_keeps_it_open_and_the_next_probe_comes_one_interval_later()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        var clock = Clock();
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = clock });
        var plan = NoRetry(Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama)));
        cloud.Fault = FaultSpec.Http(500);
        for (var i = 0; i < 4; i++)
        {
            await engine.SendAsync(Harness.Request(), plan);
        }

        Assert.Equal(3, cloud.Hits);
        clock.Advance(TimeSpan.FromSeconds(2));
        await WaitUntil(() => engine.GetCircuits()[0] is { LastProbeResult: not null, ProbeInFlight: false }, "the first probe ended");
        var s = engine.GetCircuits()[0];
        Assert.Equal("Open", s.State);
        Assert.StartsWith("ServerError: HTTP 500", s.LastProbeResult);
        Assert.Equal(4, cloud.Hits);
        Assert.Equal("CircuitOpen", (await engine.SendAsync(Harness.Request(), plan)).FailoverReason); // costs the user nothing

        clock.Advance(TimeSpan.FromSeconds(1));
        await Task.Delay(100);
        Assert.Equal(4, cloud.Hits); // not due yet
        cloud.Fault = FaultSpec.Ok;
        clock.Advance(TimeSpan.FromSeconds(1));
        await WaitUntil(() => engine.GetCircuits()[0].State == "Closed", "the second probe closed it");
        Assert.Equal(5, cloud.Hits);
        Assert.Equal(2, cloud.Requests.Count(r => r.Body.Contains(CloudProber.Prompt, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_request_sets_the_probe_interval_of_its_cloud()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        var clock = Clock();
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = clock });
        var plan = NoRetry(Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama))) with { ProbeInterval = TimeSpan.FromSeconds(10) };
        cloud.Fault = FaultSpec.Http(502);
        for (var i = 0; i < 3; i++)
        {
            await engine.SendAsync(Harness.Request(), plan);
        }

        Assert.Equal(clock.GetUtcNow().AddSeconds(10), engine.GetCircuits()[0].NextProbe);
    }

    [Theory]
    [InlineData("retry-after", "20", 20)]
    [InlineData("retry-after-ms", "45000", 45)]
    public async Task Retry_after_keeps_the_cloud_skipped_for_as_long_as_it_asked(string header, string value, int seconds)
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        var clock = Clock();
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = clock });
        var plan = Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama));
        cloud.Script = n => n == 1 ? FaultSpec.Http(429, null, (header, value)) : FaultSpec.Ok;

        Assert.Equal("RateLimited", (await engine.SendAsync(Harness.Request(), plan)).FailoverReason);
        clock.Advance(TimeSpan.FromSeconds(seconds - 1));
        var waiting = await engine.SendAsync(Harness.Request(), plan);
        Assert.Equal("CoolingDown", waiting.FailoverReason);
        Assert.Equal(1, cloud.Hits);
        Assert.Equal("CoolingDown", Assert.Single(engine.GetCircuits()).State);

        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal("Cloud", (await engine.SendAsync(Harness.Request(), plan)).Backend);
        Assert.Equal(2, cloud.Hits);
    }

    [Fact]
    public async Task Retry_after_when_the_circuit_opens_delays_the_first_probe()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.Anthropic);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        var clock = Clock();
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = clock, Circuit = new CircuitOptions { MinimumThroughput = 2 } });
        var plan = NoRetry(Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama)));
        var events = new List<ContinuityEvent>();
        engine.StateChanged += events.Add;
        cloud.Script = n => n == 1 ? FaultSpec.Http(500) : FaultSpec.Http(529, null, ("retry-after", "120"));
        await engine.SendAsync(Harness.Request(), plan);
        await engine.SendAsync(Harness.Request(), plan);
        Assert.Single(events, e => e.Kind == ContinuityEventKind.CircuitOpened);
        Assert.Equal(clock.GetUtcNow().AddSeconds(120), engine.GetCircuits()[0].NextProbe);
    }

    [Fact]
    public async Task Two_cloud_urls_never_share_a_circuit()
    {
        await using var sickServer = FakeAiServer.Start(FakeApi.OpenAI, "a");
        await using var healthyServer = FakeAiServer.Start(FakeApi.OpenAI, "b");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = Clock() });
        sickServer.Fault = FaultSpec.Http(503);
        var sick = Harness.Cloud(sickServer);
        for (var i = 0; i < 4; i++)
        {
            await engine.SendAsync(Harness.Request(), Harness.Plan(sick, Harness.TempLog(), Harness.Ollama(ollama)));
        }

        var r = await engine.SendAsync(Harness.Request(), Harness.Plan(Harness.Cloud(healthyServer), Harness.TempLog(), Harness.Ollama(ollama)));
        Assert.Equal("Cloud", r.Backend);
        Assert.Equal(new[] { "Closed", "Open" }, engine.GetCircuits().OrderBy(c => c.Endpoint == sick.Display).Select(c => c.State));

        // Scheme, host, port and path all count.
        var keys = new[]
        {
            "https://api.example.com/v1/chat/completions", "https://api.example.com/v2/chat/completions",
            "http://api.example.com/v1/chat/completions", "https://api.example.com:8443/v1/chat/completions",
            "https://eu.api.example.com/v1/chat/completions",
        }.Select(u => BackendEndpoint.Cloud(BackendKind.OpenAI, u, "m", "k").CircuitKey).ToArray();
        Assert.Equal(keys.Length, keys.Distinct().Count());
        Assert.Equal(
            BackendEndpoint.Cloud(BackendKind.OpenAI, "https://API.example.com/v1/chat/completions?api-version=1", "m", "k").CircuitKey,
            BackendEndpoint.Cloud(BackendKind.OpenAI, "https://api.example.com:443/v1/chat/completions", "m", "k").CircuitKey);
    }

    [Fact]
    public async Task Request_errors_do_not_open_the_circuit()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = Clock() });
        var plan = Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama));
        cloud.Fault = FaultSpec.Http(400);
        for (var i = 0; i < 5; i++)
        {
            await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request(), plan));
        }

        Assert.Equal(5, cloud.Hits);
        Assert.Equal("Closed", Assert.Single(engine.GetCircuits()).State);
    }

    [Fact]
    public async Task A_blackholed_cloud_costs_two_timeouts_not_one_per_request()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Fault = new FaultSpec(FaultKind.Blackhole);
        using var engine = new FailoverEngine();
        var timeouts = new BackendTimeouts { Total = TimeSpan.FromMilliseconds(400) };
        var plan = Harness.Plan(Harness.Cloud(cloud, timeouts), Harness.TempLog(), Harness.Ollama(ollama));
        var sw = Stopwatch.StartNew();
        var reasons = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            reasons.Add((await engine.SendAsync(Harness.Request(), plan)).FailoverReason);
        }

        // A silent route is never retried, and two silent failures open the circuit.
        Assert.Equal(Enumerable.Repeat("Timeout", 2).Concat(Enumerable.Repeat("CircuitOpen", 10)), reasons);
        // At most the two timeouts and one background probe (on a loaded machine a timed-out request may never have
        // reached the fake, so there is no lower bound): never a third user request.
        Assert.InRange(cloud.Hits, 1, 3);
        // The seed's client would wait 12 x 0.4 s = 4.8 s; two timeouts are 0.8 s.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), $"took {sw.Elapsed}");
    }

    [Fact]
    public async Task Concurrent_requests_share_one_circuit()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        cloud.Fault = FaultSpec.Http(502);
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = Clock() });
        var plan = Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama));
        for (var i = 0; i < 3; i++)
        {
            await engine.SendAsync(Harness.Request(), plan);
        }

        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => engine.SendAsync(Harness.Request(), plan)));
        Assert.All(results, r => Assert.Equal("Ollama", r.Backend));
        Assert.All(results, r => Assert.Equal("CircuitOpen", r.FailoverReason));
        Assert.Equal(3, cloud.Hits);
    }
}
