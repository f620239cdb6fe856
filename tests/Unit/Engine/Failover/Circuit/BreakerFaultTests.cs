using System.Diagnostics;
using OllamaContinuity.Failover;
using OllamaContinuity.Failover.Circuit;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Failover.Circuit;

/// <summary>The breaker against real faults on loopback sockets, in real time: outages cost little, recovery is fast.</summary>
public sealed class BreakerFaultTests : StandInBackendsTest
{
    private const string UserPrompt = "quarterly figures for ACME, confidential";

    private static BackendTimeouts OneSecond { get; } = new() { Connect = TimeSpan.FromSeconds(1), Total = TimeSpan.FromSeconds(1) };

    [Fact]
    public async Task A_blackhole_after_15_successes_costs_10_requests_under_4_s_and_at_most_3_cloud_attempts()
    {
        using var engine = new FailoverEngine();
        var plan = Harness.Plan(Harness.Cloud(Cloud, OneSecond), Harness.TempLog(), Harness.Ollama(Ollama));
        for (var i = 0; i < 15; i++)
        {
            Assert.Equal("Cloud", (await engine.SendAsync(Harness.Request(), plan)).Backend);
        }

        Cloud.Fault = new FaultSpec(FaultKind.Blackhole);
        var before = Cloud.Hits;
        var sw = Stopwatch.StartNew();
        var served = new List<AiResponse>();
        for (var i = 0; i < 10; i++)
        {
            served.Add(await engine.SendAsync(Harness.Request(), plan));
        }

        sw.Stop();
        Assert.All(served, r => Assert.Equal("Ollama", r.Backend));
        Assert.Equal(["Timeout", "Timeout"], served.Take(2).Select(r => r.FailoverReason));
        Assert.All(served.Skip(2), r => Assert.Equal("CircuitOpen", r.FailoverReason));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(4), $"took {sw.Elapsed}");
        // The two timeouts (one may not even have reached the fake on a loaded machine) and at most one probe.
        Assert.InRange(Cloud.Hits - before, 1, 3);
    }

    [Fact]
    public async Task After_an_outage_the_cloud_serves_again_within_3_s_of_its_return_and_no_user_prompt_reached_it_meanwhile()
    {
        using var engine = new FailoverEngine();
        var plan = Harness.Plan(Harness.Cloud(Cloud, OneSecond), Harness.TempLog(), Harness.Ollama(Ollama));
        var down = true;
        Cloud.Script = _ => Volatile.Read(ref down) ? new FaultSpec(FaultKind.Blackhole) : FaultSpec.Ok;

        // 4 s of outage, one request every 250 ms.
        var outage = Stopwatch.StartNew();
        var reasons = new List<string>();
        while (outage.Elapsed < TimeSpan.FromSeconds(4))
        {
            reasons.Add((await engine.SendAsync(Harness.Request(UserPrompt), plan)).FailoverReason);
            await Task.Delay(250);
        }

        Assert.Equal(["Timeout", "Timeout"], reasons.Take(2));
        Assert.All(reasons.Skip(2), r => Assert.Equal("CircuitOpen", r));
        var userAttempts = Cloud.Requests.Count(r => r.Body.Contains(UserPrompt, StringComparison.Ordinal));
        Assert.InRange(userAttempts, 1, 2); // the two timeouts, as received (a timed-out one may not have arrived)

        Volatile.Write(ref down, false);
        var back = Stopwatch.StartNew();
        while (true)
        {
            var r = await engine.SendAsync(Harness.Request(UserPrompt), plan);
            if (r.Backend == "Cloud")
            {
                break;
            }

            Assert.True(back.Elapsed < TimeSpan.FromSeconds(3), "still on Ollama 3 s after the cloud returned");
            await Task.Delay(100);
        }

        Assert.True(back.Elapsed < TimeSpan.FromSeconds(3), $"back on the cloud after {back.Elapsed}");
        var probes = Cloud.Requests.Where(r => r.Body.Contains(CloudProber.Prompt, StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(probes);
        Assert.All(probes, p => Assert.DoesNotContain(UserPrompt, p.Body, StringComparison.Ordinal));
        Assert.Equal(userAttempts + probes.Length + 1, Cloud.Hits);
    }

    [Theory]
    [InlineData(FakeApi.OpenAI)]
    [InlineData(FakeApi.Anthropic)]
    public async Task A_probe_is_a_fixed_one_token_request_to_the_same_model_never_the_users_prompt(FakeApi api)
    {
        await using var cloud = FakeAiServer.Start(api, "cloud");
        using var engine = new FailoverEngine();
        var plan = Harness.Plan(Harness.Cloud(cloud, OneSecond), Harness.TempLog(), Harness.Ollama(Ollama)) with { ProbeInterval = TimeSpan.FromMilliseconds(200) };
        cloud.Fault = FaultSpec.Http(500);
        for (var i = 0; i < 2; i++)
        {
            // 2 requests, 2 tries each.
            await engine.SendAsync(new AiRequest { Messages = [new ChatMessage("user", UserPrompt)], SystemPrompt = "system secret" }, plan);
        }

        Assert.Equal("Open", engine.GetCircuits()[0].State);
        cloud.Fault = FaultSpec.Ok;
        await CircuitTests.WaitUntil(() => engine.GetCircuits()[0].State == "Closed", "a probe closed the circuit");

        var probe = Assert.Single(cloud.Requests, r => r.Body.Contains(CloudProber.Prompt, StringComparison.Ordinal));
        var json = probe.Json!;
        Assert.Equal("cloud-model", json["model"]!.GetValue<string>());
        Assert.Equal(1, json["max_tokens"]!.GetValue<int>());
        Assert.NotEqual(true, json["stream"]?.GetValue<bool>());
        Assert.Single(json["messages"]!.AsArray());
        Assert.DoesNotContain(UserPrompt, probe.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("system secret", probe.Body, StringComparison.Ordinal);
        // The probe carries the key like any request (it is a real request), and nothing else of the user's.
        Assert.Contains(probe.Headers.Values, v => v.Contains(Harness.CanaryKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task At_most_one_probe_is_in_flight_however_short_the_interval()
    {
        using var engine = new FailoverEngine();
        // Probe interval 100 ms; every probe hangs until its 1 s timeout.
        var plan = Harness.Plan(Harness.Cloud(Cloud, OneSecond), Harness.TempLog(), Harness.Ollama(Ollama)) with { ProbeInterval = TimeSpan.FromMilliseconds(100) };
        Cloud.Fault = new FaultSpec(FaultKind.Blackhole);
        await engine.SendAsync(Harness.Request(), plan);
        await engine.SendAsync(Harness.Request(), plan);
        Assert.Equal("Open", engine.GetCircuits()[0].State);

        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(2.6))
        {
            // Requests keep coming: none reaches the cloud, none waits for a probe.
            var t = Stopwatch.StartNew();
            Assert.Equal("CircuitOpen", (await engine.SendAsync(Harness.Request(), plan)).FailoverReason);
            Assert.True(t.Elapsed < TimeSpan.FromMilliseconds(500), $"a request waited {t.Elapsed}");
            await Task.Delay(50);
        }

        var probes = Cloud.Requests.Count(r => r.Body.Contains(CloudProber.Prompt, StringComparison.Ordinal));
        // 2.6 s of 1 s probes, one after the other: 2 or 3, never the 26 the interval alone would allow.
        Assert.InRange(probes, 2, 3);
        Assert.InRange(Cloud.Hits - probes, 1, 2); // besides the probes, only the two user requests that opened it
    }
}
