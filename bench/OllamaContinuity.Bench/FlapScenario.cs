using System.Diagnostics;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Scenario 4: the cloud flaps (S15 of the field study): healthy, a 60 s outage (accepts, never answers), healthy
/// again, one request every 3 s fired on a clock (open loop, so slow requests overlap as they would for a user).
/// Three strategies side by side in one run, each against its own fake cloud with the same schedule: the seed's
/// (cloud every time), the previous ratio-only breaker (a model of it: see <see cref="RatioOnlyBreaker"/>), and ours.
/// Then scenario 5: time lost to a dead cloud after it was healthy for a while (15 healthy requests, then 10
/// sequential requests to a blackholed cloud, 1 s timeout).
/// </summary>
internal static class FlapScenario
{
    private sealed record Shot(TimeSpan Start, TimeSpan End, bool Cloud, int CloudTries);

    public static async Task RunAsync(bool quick)
    {
        // Full scale by default; --quick divides every duration by 10 (probe interval and break included).
        var scale = quick ? 0.1 : 1.0;
        TimeSpan S(double seconds) => TimeSpan.FromSeconds(seconds * scale);
        // The outage starts and ends between two requests (not on a request's tick), as real outages do.
        var healthy = S(16.5);
        var outage = S(60);
        var after = S(30);
        var interval = S(3);
        var timeout = S(5);
        var probe = S(2);
        var oldBreak = S(30);

        Console.WriteLine($"## 4. Flapping cloud: healthy {healthy.TotalSeconds:0.#} s, outage {outage.TotalSeconds:0.#} s (accepts, never answers), healthy again; one request every {interval.TotalSeconds:0.##} s; cloud timeout {timeout.TotalSeconds:0.##} s");
        Console.WriteLine();
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        var clock = Stopwatch.StartNew();
        bool Down() => clock.Elapsed >= healthy && clock.Elapsed < healthy + outage;

        await using var seedCloud = FakeAiServer.Start(FakeApi.OpenAI, "seed-cloud");
        await using var oldCloud = FakeAiServer.Start(FakeApi.OpenAI, "old-cloud");
        await using var ourCloud = FakeAiServer.Start(FakeApi.OpenAI, "our-cloud");
        var hitsDuringOutage = new int[3];
        var servers = new[] { seedCloud, oldCloud, ourCloud };
        for (var i = 0; i < servers.Length; i++)
        {
            var index = i;
            servers[i].Script = _ =>
            {
                if (!Down())
                {
                    return FaultSpec.Ok;
                }

                Interlocked.Increment(ref hitsDuringOutage[index]);
                return new FaultSpec(FaultKind.Blackhole);
            };
        }

        using var http = RawPost.CreateClient(connectTimeout: timeout);
        var old = new RatioOnlyBreaker(oldBreak);
        using var engine = new FailoverEngine();
        var closedAt = TimeSpan.Zero;
        engine.StateChanged += e =>
        {
            if (e.Kind == ContinuityEventKind.CircuitClosed)
            {
                closedAt = clock.Elapsed;
            }
        };
        var ourPlan = new BackendPlan(
            BackendEndpoint.Cloud(BackendKind.OpenAI, ourCloud.ChatUri.ToString(), "gpt-4o", "sk-bench-not-a-key", new BackendTimeouts { Connect = timeout, FirstToken = timeout, Total = timeout }),
            [BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b")]) { DisableLog = true, ProbeInterval = probe };

        var strategies = new (string Name, Func<Task<(bool Cloud, int Tries)>> Send)[]
        {
            ("seed (cloud, timeout, Ollama; every time)", async () =>
            {
                var (backend, _) = await BlackholeScenario.SeedAiRequestAsync(http, seedCloud.ChatUri, ollama.ChatUri, timeout);
                return (backend == "cloud", 1);
            }),
            ("previous ratio-only breaker (30 s break, half-open user request)", () => old.SendAsync(http, oldCloud.ChatUri, ollama.ChatUri, timeout)),
            ("ours (consecutive/silent rules, background probe)", async () =>
            {
                var r = await engine.SendAsync(Requests.New(), ourPlan);
                return (r.Backend == "Cloud", r.Attempts.Count(a => a.Backend == "Cloud" && a.Outcome != "Skipped"));
            }),
        };

        // Warm-up (connections, JIT) before the clock's schedule starts, so the healthy phase is really healthy.
        foreach (var (_, send) in strategies)
        {
            await send();
        }

        foreach (var server in servers)
        {
            Volatile.Write(ref hitsDuringOutage[Array.IndexOf(servers, server)], 0);
        }

        clock.Restart();
        var shots = strategies.Select(_ => new List<Shot>()).ToArray();
        var pending = new List<Task>();
        var end = healthy + outage + after;
        for (var k = 0; interval * k < end; k++)
        {
            var due = interval * k;
            if (clock.Elapsed < due)
            {
                await Task.Delay(due - clock.Elapsed);
            }

            for (var s = 0; s < strategies.Length; s++)
            {
                var index = s;
                pending.Add(Task.Run(async () =>
                {
                    var start = clock.Elapsed;
                    var (cloud, tries) = await strategies[index].Send();
                    lock (shots[index])
                    {
                        shots[index].Add(new Shot(start, clock.Elapsed, cloud, tries));
                    }
                }));
            }
        }

        await Task.WhenAll(pending);
        var back = healthy + outage;
        var table = new Table("strategy", "requests in outage", "user requests sent to the dead cloud", "cloud hits during outage (probes included)", "mean latency in outage s",
            "cloud let through again after return s", "requests after return still on Ollama", "first cloud answer after return s");
        for (var s = 0; s < strategies.Length; s++)
        {
            var list = shots[s].OrderBy(x => x.Start).ToArray();
            var inOutage = list.Where(x => x.Start >= healthy && x.Start < back).ToArray();
            var firstBack = list.FirstOrDefault(x => x.Start >= back && x.Cloud);
            var backAfter = firstBack is null ? "never" : Fmt.N((firstBack.End - back).TotalSeconds, "0.0");
            var missed = list.Count(x => x.Start >= back && !x.Cloud);
            var closed = s switch
            {
                1 => old.ClosedAt(clock) is { } c && c >= back ? Fmt.N((c - back).TotalSeconds, "0.0") : "-",
                2 => closedAt >= back ? Fmt.N((closedAt - back).TotalSeconds, "0.0") : "-",
                _ => "0 (no breaker)",
            };
            table.Row(strategies[s].Name, inOutage.Length.ToString(), inOutage.Sum(x => x.CloudTries).ToString(), hitsDuringOutage[s].ToString(),
                Fmt.N(inOutage.Average(x => (x.End - x.Start).TotalSeconds), "0.00"), closed, missed.ToString(), backAfter);
        }

        table.Print();
        Console.WriteLine();
        Console.WriteLine($"\"Cloud let through again\": when the breaker closed after the cloud's return (the previous breaker: its half-open user request succeeded; ours: a background probe succeeded). \"First cloud answer\": the end of the first request served by the cloud after its return (requests come every {interval.TotalSeconds:0.##} s, so it includes waiting for the next request).");
        Console.WriteLine();
        await DeadAfterHealthyAsync(quick);
    }

    private static async Task DeadAfterHealthyAsync(bool quick)
    {
        var timeout = TimeSpan.FromSeconds(quick ? 0.25 : 1);
        Console.WriteLine($"## 5. Time lost to a dead cloud after it was healthy for a while: 15 healthy requests, then 10 sequential requests to a blackholed cloud, cloud timeout {timeout.TotalSeconds:0.##} s");
        Console.WriteLine();
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        var table = new Table("strategy", "10 requests s", "cloud attempts", "ratio (seed / this)");
        double? seedSeconds = null;
        foreach (var name in new[] { "seed", "old", "ours" })
        {
            await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud-" + name);
            using var http = RawPost.CreateClient(connectTimeout: timeout);
            var old = new RatioOnlyBreaker(TimeSpan.FromSeconds(30));
            using var engine = new FailoverEngine();
            var plan = new BackendPlan(
                BackendEndpoint.Cloud(BackendKind.OpenAI, cloud.ChatUri.ToString(), "gpt-4o", "sk-bench-not-a-key", new BackendTimeouts { Connect = timeout, FirstToken = timeout, Total = timeout }),
                [BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b")]) { DisableLog = true };
            Func<Task<bool>> send = name switch
            {
                "seed" => async () => (await BlackholeScenario.SeedAiRequestAsync(http, cloud.ChatUri, ollama.ChatUri, timeout)).Backend == "cloud",
                "old" => async () => (await old.SendAsync(http, cloud.ChatUri, ollama.ChatUri, timeout)).Cloud,
                _ => async () => (await engine.SendAsync(Requests.New(), plan)).Backend == "Cloud",
            };
            for (var i = 0; i < 15; i++)
            {
                if (!await send())
                {
                    throw new InvalidOperationException("the healthy phase was not served by the cloud");
                }
            }

            cloud.Fault = new FaultSpec(FaultKind.Blackhole);
            var before = cloud.Hits;
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < 10; i++)
            {
                await send();
            }

            var seconds = sw.Elapsed.TotalSeconds;
            seedSeconds ??= seconds;
            table.Row(name switch { "seed" => "seed (cloud, timeout, Ollama; every time)", "old" => "previous ratio-only breaker", _ => "ours" },
                Fmt.N(seconds), (cloud.Hits - before).ToString(), name == "seed" ? "" : Fmt.N(seedSeconds.Value / seconds, "0.0") + "x");
        }

        table.Print();
    }

    /// <summary>
    /// A model of the engine's previous circuit breaker (Polly's ratio rule, as configured before this change): it
    /// opens when at least 3 requests within 30 s were made and at least half failed; it stays open for the break;
    /// then the next user request is the half-open trial (success closes, failure opens it for another break). The
    /// engine no longer contains it, so the bench keeps this model to compare against.
    /// </summary>
    internal sealed class RatioOnlyBreaker(TimeSpan breakDuration)
    {
        private readonly object _lock = new();
        private readonly Queue<(long At, bool Failed)> _window = new();
        private long? _openUntil;
        private bool _trialInFlight;
        private long _closedAt = -1;

        public TimeSpan? ClosedAt(Stopwatch clock) => _closedAt < 0 ? null : clock.Elapsed - Stopwatch.GetElapsedTime(_closedAt);

        public async Task<(bool Cloud, int Tries)> SendAsync(HttpClient http, Uri cloud, Uri ollama, TimeSpan timeout)
        {
            bool trial, skip;
            lock (_lock)
            {
                var now = Stopwatch.GetTimestamp();
                skip = _openUntil is { } until && (now < until || _trialInFlight);
                trial = !skip && _openUntil is not null;
                _trialInFlight |= trial;
            }

            if (skip)
            {
                await OllamaAsync(http, ollama);
                return (false, 0);
            }

            var (backend, _) = await BlackholeScenario.SeedAiRequestAsync(http, cloud, ollama, timeout);
            var ok = backend == "cloud";
            lock (_lock)
            {
                var now = Stopwatch.GetTimestamp();
                if (trial)
                {
                    _trialInFlight = false;
                    _openUntil = ok ? null : now + (long)(breakDuration.TotalSeconds * Stopwatch.Frequency);
                    if (ok)
                    {
                        _window.Clear();
                        _closedAt = now;
                    }
                }
                else if (_openUntil is null)
                {
                    _window.Enqueue((now, !ok));
                    while (_window.Count > 0 && Stopwatch.GetElapsedTime(_window.Peek().At) > TimeSpan.FromSeconds(30))
                    {
                        _window.Dequeue();
                    }

                    if (_window.Count >= 3 && _window.Count(w => w.Failed) * 2 >= _window.Count)
                    {
                        _openUntil = now + (long)(breakDuration.TotalSeconds * Stopwatch.Frequency);
                        _window.Clear();
                    }
                }
            }

            return (ok, 1);
        }

        private static async Task OllamaAsync(HttpClient http, Uri ollama)
        {
            using var content = new StringContent(
                """{"model":"llama3.1:8b","messages":[{"role":"user","content":"Summarize the benefits of local AI in 50 words."}],"stream":false}""",
                System.Text.Encoding.UTF8, "application/json");
            using var r = await http.PostAsync(ollama, content);
            await r.Content.ReadAsByteArrayAsync();
        }
    }
}
