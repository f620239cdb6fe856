using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Scenario 2: sequential requests while the cloud is blackholed. The seed's strategy pays the cloud timeout on
/// every request; ours pays it until the circuit opens (2 silent failures), then goes straight to Ollama.
/// </summary>
internal static class BlackholeScenario
{
    public static async Task RunAsync(bool quick)
    {
        var (count, timeout) = quick ? (8, TimeSpan.FromMilliseconds(250)) : (50, TimeSpan.FromSeconds(1));
        Console.WriteLine($"## 2. Blackholed cloud: {count} sequential requests, cloud timeout {timeout.TotalSeconds:0.###} s, healthy Ollama");
        Console.WriteLine();

        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        cloud.Fault = new FaultSpec(FaultKind.Blackhole);
        using var syn = new SynBlackhole();

        var table = new Table("cloud fault", "strategy", "total s", "mean ms/request", "cloud attempts", "ratio (seed / ours)");
        await RunPairAsync(table, "accepts, never answers (Blackhole)", cloud.ChatUri, ollama, count, timeout);
        if (syn.IsBlackholed)
        {
            await RunPairAsync(table, "SYN dropped (SynBlackhole)", syn.Uri(), ollama, count, timeout);
        }
        else
        {
            table.Row("SYN dropped (SynBlackhole)", "skipped: the kernel did not drop SYNs here", "-", "-", "-", "-");
        }

        table.Print();
        Console.WriteLine();
        Console.WriteLine("Seed: try the cloud with the timeout, then Ollama, on every request (ai_failover_client.py, ported to one pooled HttpClient).");
        Console.WriteLine("Ours: FailoverEngine.SendAsync, circuit defaults (opens at 2 timeouts or 3 failures in a row, or >= 50% of >= 3 in 30 s; then a background probe every 2 s); request log off. Target: ratio >= 10.");
    }

    private static async Task RunPairAsync(Table table, string fault, Uri cloudUri, FakeAiServer ollama, int count, TimeSpan timeout)
    {
        // Seed's strategy. requests' timeout= bounds the connect and each read: the handler's ConnectTimeout and the token do the same here.
        using var http = RawPost.CreateClient(connectTimeout: timeout);
        var cloudTries = 0;
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            var (backend, _) = await SeedAiRequestAsync(http, cloudUri, ollama.ChatUri, timeout);
            cloudTries++;
            if (backend != "ollama")
            {
                throw new InvalidOperationException("the seed baseline was not served by Ollama");
            }
        }

        var seed = sw.Elapsed;

        // Ours: a fresh engine (closed circuit), the same timeout on the cloud's connect and total.
        using var engine = new FailoverEngine();
        var cloudEp = BackendEndpoint.Cloud(BackendKind.OpenAI, cloudUri.ToString(), "gpt-4o", "sk-bench-not-a-key",
            new BackendTimeouts { Connect = timeout, FirstToken = timeout, Total = timeout });
        var plan = new BackendPlan(cloudEp, [BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b")]) { DisableLog = true };
        var ourTries = 0;
        sw.Restart();
        for (var i = 0; i < count; i++)
        {
            var response = await engine.SendAsync(Requests.New(), plan);
            Requests.Expect(response, BackendRole.Ollama);
            ourTries += response.Attempts.Count(a => a.Backend == nameof(BackendRole.Cloud) && a.Outcome == "Failed");
        }

        var ours = sw.Elapsed;
        table.Row(fault, "seed (cloud, timeout, Ollama; every time)", Fmt.N(seed.TotalSeconds), Fmt.N(seed.TotalMilliseconds / count, "0.0"), cloudTries.ToString(), "");
        table.Row(fault, "ours (circuit breaker)", Fmt.N(ours.TotalSeconds), Fmt.N(ours.TotalMilliseconds / count, "0.0"), ourTries.ToString(),
            Fmt.N(seed / ours, "0.0") + "x, target 10x: " + Fmt.Verdict(seed / ours >= 10));
    }

    /// <summary>requests' json=: a serialised body with a Content-Length (JsonContent would send it chunked).</summary>
    private static ByteArrayContent Json<T>(T value)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(value));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    /// <summary>ai_request() of the seed: call_cloud with its timeout, on any failure call_ollama (stream false, 60 s).</summary>
    internal static async Task<(string Backend, string? Text)> SeedAiRequestAsync(HttpClient http, Uri cloudUri, Uri ollamaUri, TimeSpan cloudTimeout)
    {
        var messages = new[] { new { role = "user", content = Requests.Prompt[0].Content } };
        try
        {
            using var cts = new CancellationTokenSource(cloudTimeout);
            using var message = new HttpRequestMessage(HttpMethod.Post, cloudUri) { Content = Json(new { model = "gpt-4o", messages }) };
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-bench-not-a-key");
            using var r = await http.SendAsync(message, cts.Token);
            if ((int)r.StatusCode == 200)
            {
                using var doc = JsonDocument.Parse(await r.Content.ReadAsStreamAsync(cts.Token));
                return ("cloud", doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
            }
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            // logging.warning("Cloud request failed"), then fall back.
        }

        using var ollamaCts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var o = await http.PostAsync(ollamaUri, Json(new { model = "llama3.1:8b", messages, stream = false }), ollamaCts.Token);
        using var odoc = JsonDocument.Parse(await o.Content.ReadAsStreamAsync(ollamaCts.Token));
        return ((int)o.StatusCode == 200 ? "ollama" : "none", odoc.RootElement.GetProperty("message").GetProperty("content").GetString());
    }
}
