using System.Diagnostics;
using System.Text;
using System.Text.Json;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Scenario 4: a streamed answer whose cloud stream is cut after 40 of 60 words, with a healthy Ollama. Time to a
/// complete answer: the core's stream rescue (Restart, Continue) against a client that streams from the cloud and,
/// when that fails, simply sends the request to Ollama.
/// </summary>
internal static class RescueScenario
{
    private static readonly string SixtyWords = string.Join(" ", Enumerable.Range(1, 60).Select(i => "w" + i));

    public static async Task RunAsync(bool quick)
    {
        var rounds = quick ? 2 : 15;
        var delay = TimeSpan.FromMilliseconds(10);
        Console.WriteLine($"## 4. Stream rescue: cloud stream cut after 40 of 60 words, healthy Ollama, {rounds} rounds, {delay.TotalMilliseconds:0} ms between streamed pieces");
        Console.WriteLine();

        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        cloud.Answer = _ => SixtyWords;
        cloud.Fault = new FaultSpec(FaultKind.CutAfterWords) { Words = 40 };
        cloud.ChunkDelay = delay;
        ollama.Answer = _ => SixtyWords;
        ollama.ChunkDelay = delay;

        using var engine = new FailoverEngine();
        var timeouts = new BackendTimeouts { Total = TimeSpan.FromSeconds(30), FirstToken = TimeSpan.FromSeconds(10) };
        var plan = new BackendPlan(BackendEndpoint.Cloud(BackendKind.OpenAI, cloud.ChatUri.ToString(), "gpt-4o", "sk-bench-not-a-key", timeouts),
            [BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b", timeouts)]) { DisableLog = true };
        using var http = RawPost.CreateClient();

        var restart = new Samples();
        var cont = new Samples();
        var baseline = new Samples();
        // Warm-up, then rounds in rotating order so that drift hits every side alike.
        for (var r = -1; r < rounds; r++)
        {
            for (var k = 0; k < 3; k++)
            {
                switch ((r + k + 3) % 3)
                {
                    case 0:
                        // Every run is one cut cloud stream: the circuit must not open and skip the cloud.
                        engine.ResetCircuits();
                        await TimeAsync(r >= 0 ? restart : null, async () => Check(await engine.SendAsync(Request(StreamRescueMode.Restart), plan)));
                        break;
                    case 1:
                        engine.ResetCircuits();
                        await TimeAsync(r >= 0 ? cont : null, async () => Check(await engine.SendAsync(Request(StreamRescueMode.Continue), plan)));
                        break;
                    default:
                        await TimeAsync(r >= 0 ? baseline : null, () => RetryOnOllamaAsync(http, cloud.ChatUri, ollama.ChatUri));
                        break;
                }
            }
        }

        var table = new Table("client", "n", "median s to complete answer", "p95 s", "ratio to baseline (median)");
        table.Row("baseline: stream the cloud, on failure ask Ollama", baseline.Count.ToString(), S(baseline.P50), S(baseline.P95), "1.00");
        table.Row("core, -StreamRescue Restart (default)", restart.Count.ToString(), S(restart.P50), S(restart.P95), Fmt.N(restart.P50 / baseline.P50));
        table.Row("core, -StreamRescue Continue", cont.Count.ToString(), S(cont.P50), S(cont.P95), Fmt.N(cont.P50 / baseline.P50));
        table.Print();
        Console.WriteLine();
        Console.WriteLine("Every side gets the complete answer (checked). Continue asks Ollama only for the rest, so its fake answers with the same 60 words;");
        Console.WriteLine("a real model would generate about a third as many tokens. Without rescue (-StreamRescue None, the old behaviour) there is no answer at all.");

        static string S(double us) => Fmt.N(us / 1_000_000, "0.000");
    }

    private static AiRequest Request(StreamRescueMode mode) => new() { Messages = Requests.Prompt, Stream = true, StreamRescue = mode };

    private static void Check(AiResponse r)
    {
        if (r.Backend != "Ollama" || !r.Text.EndsWith("w60", StringComparison.Ordinal) || r.Attempts[0].PartialText is not { Length: > 0 })
        {
            throw new InvalidOperationException("the rescue did not give a complete answer: " + r.Text);
        }
    }

    private static async Task TimeAsync(Samples? samples, Func<Task> run)
    {
        var t0 = Stopwatch.GetTimestamp();
        await run();
        samples?.Add(t0, Stopwatch.GetTimestamp());
    }

    /// <summary>What a plain client does: stream from the cloud; when that breaks, send the same request to Ollama and stream its answer.</summary>
    private static async Task RetryOnOllamaAsync(HttpClient http, Uri cloudUri, Uri ollamaUri)
    {
        var messages = new[] { new { role = "user", content = Requests.Prompt[0].Content } };
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, cloudUri) { Content = Json(new { model = "gpt-4o", messages, stream = true }) };
            message.Headers.Authorization = new("Bearer", "sk-bench-not-a-key");
            using var r = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await r.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line == "data: [DONE]")
                {
                    throw new InvalidOperationException("the cloud was meant to be cut");
                }
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            // The stream broke: ask Ollama.
        }

        using var o = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, ollamaUri) { Content = Json(new { model = "llama3.1:8b", messages, stream = true }) },
            HttpCompletionOption.ResponseHeadersRead);
        using var oreader = new StreamReader(await o.Content.ReadAsStreamAsync());
        var text = new StringBuilder();
        while (await oreader.ReadLineAsync() is { } line)
        {
            using var doc = JsonDocument.Parse(line);
            text.Append(doc.RootElement.GetProperty("message").GetProperty("content").GetString());
            if (doc.RootElement.GetProperty("done").GetBoolean())
            {
                break;
            }
        }

        if (!text.ToString().EndsWith("w60", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("the baseline did not get a complete answer");
        }
    }

    private static ByteArrayContent Json<T>(T value)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(value));
        content.Headers.ContentType = new("application/json");
        return content;
    }
}
