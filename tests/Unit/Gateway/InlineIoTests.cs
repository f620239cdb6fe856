using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>
/// The real gateway process with its socket I/O and request code on the socket threads (--inline-io true, the default
/// on Linux) and on the thread pool (false): both answer whole and streamed requests, many at once.
/// </summary>
public sealed class InlineIoTests : StandInBackendsTest
{
    private const string Token = "oc_inline_io_token_0123456789abcdef";
    private readonly string _dir = TestPaths.New("inlineio");

    [Theory]
    [InlineData("true")]
    [InlineData("false")]
    public async Task The_gateway_process_serves_whole_and_streamed_answers_many_at_once(string inline)
    {
        Directory.CreateDirectory(_dir);
        var tokens = Path.Combine(_dir, "tokens.json");
        await File.WriteAllTextAsync(tokens, $$"""{"tokens":[{"name":"app","token":"{{Token}}"}]}""");
        Cloud.Answer = _ => string.Join(" ", Enumerable.Range(1, 200).Select(i => "w" + i));
        var psi = new ProcessStartInfo(GatewayControl.DotnetHost()) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { typeof(GatewayOptions).Assembly.Location, "--port", "0", "--tokens-file", tokens, "--log-path", Path.Combine(_dir, "requests.jsonl"), "--inline-io", inline })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["CLOUD_PROVIDER"] = "OpenAI";
        psi.Environment["CLOUD_API_URL"] = Cloud.ChatUri.ToString();
        psi.Environment["CLOUD_API_KEY"] = "sk-test-inline-io";
        psi.Environment["CLOUD_MODEL"] = "gpt-4o";
        psi.Environment["OLLAMA_URL"] = Ollama.BaseUri.ToString();
        psi.Environment["OLLAMACONTINUITY_STATE_DIR"] = _dir;
        psi.Environment.Remove(GatewayProgram.InlineCompletionsVariable);
        psi.Environment.Remove(GatewayOptions.InlineIoVariable);
        using var p = Process.Start(psi)!;
        try
        {
            var url = await GatewayProcess.Listening(p).WaitAsync(TimeSpan.FromSeconds(60));
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };

            var answers = await Task.WhenAll(Enumerable.Range(0, 24).Select(async i =>
            {
                using var r = await http.SendAsync(Post(i % 2 == 0));
                var body = await r.Content.ReadAsStringAsync();
                Assert.True(r.IsSuccessStatusCode, $"{(int)r.StatusCode}: {body}");
                return body;
            }));
            Assert.All(answers.Where((_, i) => i % 2 == 0), b => Assert.Contains("data: [DONE]", b, StringComparison.Ordinal));
            var expected = string.Join(" ", Enumerable.Range(1, 200).Select(i => "w" + i));
            Assert.All(answers.Where((_, i) => i % 2 == 0), b => Assert.Equal(expected, string.Concat(GatewayHarness.OpenAIDeltas(b))));
            Assert.All(answers.Where((_, i) => i % 2 == 1), b => Assert.Contains("w200", b, StringComparison.Ordinal));
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }

        HttpRequestMessage Post(bool stream)
        {
            var m = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StringContent($$"""{"model":"ollamacontinuity","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
            };
            m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
            return m;
        }
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        try
        {
            Directory.Delete(_dir, true);
        }
        catch (IOException)
        {
        }
    }
}
