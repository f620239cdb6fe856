using System.Diagnostics;
using Microsoft.Extensions.Time.Testing;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover;

/// <summary>The circuit per cloud endpoint: opens on repeated failures, skips the cloud, probes, recovers. Time is controlled.</summary>
public sealed class CircuitTests
{
    private static FakeTimeProvider Clock() => new(new DateTimeOffset(2026, 11, 24, 8, 0, 0, TimeSpan.Zero));

    [Fact]
    public async Task Three_failures_open_the_circuit_then_the_cloud_is_skipped_until_the_probe_recovers()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        var clock = Clock();
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = clock });
        var events = new List<ContinuityEvent>();
        engine.StateChanged += e => { lock (events) { events.Add(e); } };
        var plan = Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama));

        cloud.Fault = FaultSpec.Http(503);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("ServerError", (await engine.SendAsync(Harness.Request(), plan)).FailoverReason);
        }

        Assert.Equal(3, cloud.Hits);
        Assert.Contains(events, e => e.Kind == ContinuityEventKind.CircuitOpened && e.Endpoint == plan.Cloud!.Display && e.Until == clock.GetUtcNow().AddSeconds(30));
        var snapshot = Assert.Single(engine.GetCircuits());
        Assert.Equal("Open", snapshot.State);
        Assert.Equal("ServerError", snapshot.Reason);

        // Open: the cloud is not contacted, and the response says it was automatic contingency.
        var skipped = await engine.SendAsync(Harness.Request(), plan);
        Assert.Equal(3, cloud.Hits);
        Assert.Equal("CircuitOpen", skipped.FailoverReason);
        Assert.True(skipped.Contingency);
        Assert.Equal("Automatic", skipped.ContingencySource);
        Assert.Equal("Skipped", skipped.Attempts[0].Outcome);

        // After the break the next request probes the cloud; it has recovered, so the circuit closes.
        cloud.Fault = FaultSpec.Ok;
        clock.Advance(TimeSpan.FromSeconds(31));
        var probe = await engine.SendAsync(Harness.Request(), plan);
        Assert.Equal("Cloud", probe.Backend);
        Assert.Equal(4, cloud.Hits);
        Assert.Contains(events, e => e.Kind == ContinuityEventKind.CircuitClosed);
        Assert.Equal("Closed", Assert.Single(engine.GetCircuits()).State);
    }

    [Fact]
    public async Task A_failed_probe_opens_the_circuit_again()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        var clock = Clock();
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = clock });
        var plan = Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama));
        cloud.Fault = FaultSpec.Http(500);
        for (var i = 0; i < 4; i++)
        {
            await engine.SendAsync(Harness.Request(), plan);
        }

        Assert.Equal(3, cloud.Hits);
        clock.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal("ServerError", (await engine.SendAsync(Harness.Request(), plan)).FailoverReason); // the probe
        Assert.Equal("CircuitOpen", (await engine.SendAsync(Harness.Request(), plan)).FailoverReason);
        Assert.Equal(4, cloud.Hits);
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
    public async Task Retry_after_longer_than_the_break_sets_the_break()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.Anthropic);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        var clock = Clock();
        using var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = clock, Circuit = new CircuitOptions { MinimumThroughput = 2 } });
        var plan = Harness.Plan(Harness.Cloud(cloud), Harness.TempLog(), Harness.Ollama(ollama));
        var events = new List<ContinuityEvent>();
        engine.StateChanged += events.Add;
        cloud.Script = n => n == 1 ? FaultSpec.Http(500) : FaultSpec.Http(529, null, ("retry-after", "120"));
        await engine.SendAsync(Harness.Request(), plan);
        await engine.SendAsync(Harness.Request(), plan);
        var opened = Assert.Single(events, e => e.Kind == ContinuityEventKind.CircuitOpened);
        Assert.Equal(clock.GetUtcNow().AddSeconds(120), opened.Until);
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
    public async Task A_blackholed_cloud_costs_three_timeouts_not_one_per_request()
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

        Assert.Equal(Enumerable.Repeat("Timeout", 3).Concat(Enumerable.Repeat("CircuitOpen", 9)), reasons);
        Assert.Equal(3, cloud.Hits);
        // The seed's client would wait 12 x 0.4 s = 4.8 s; three timeouts are 1.2 s.
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
