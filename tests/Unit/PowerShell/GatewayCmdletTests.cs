using System.Diagnostics;
using System.Management.Automation;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// Start-, Get- and Stop-AiGateway through a real PowerShell: the gateway runs as its own process from the module's
/// Gateway folder, with fake cloud and Ollama servers behind it. They set OLLAMACONTINUITY_STATE_DIR, so they run in
/// the serial collection.
/// </summary>
[Collection("Process environment")]
public sealed class GatewayCmdletTests : GatewaySessionTest
{
    public GatewayCmdletTests()
        : base("ps-gateway")
    {
    }

    [Fact]
    public async Task Start_serves_applications_Get_shows_health_and_counts_Stop_ends_the_process()
    {
        var started = Assert.Single(Session.Invoke(
            "Start-AiGateway -Port 0 -CloudUri $cloud -CloudApiKey $k -OllamaUri $ollama",
            new Dictionary<string, object?> { ["cloud"] = Cloud.ChatUri.ToString(), ["ollama"] = Ollama.BaseUri.ToString(), ["k"] = Secure("sk-cloud-test") }));
        Assert.False(Session.HadErrors, string.Join("; ", Session.Streams!.Error));
        var url = (string)started.Properties["Url"].Value;
        var pid = (int)started.Properties["ProcessId"].Value;
        Assert.Equal("Healthy", started.Properties["Health"].Value);
        Assert.StartsWith("http://127.0.0.1:", url);
        Assert.Equal(Path.Combine(StateDir, "User", "gateway-tokens.json"), started.Properties["TokensFile"].Value);

        // An application with the token from the file the cmdlet created.
        var token = (string)JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(StateDir, "User", "gateway-tokens.json")))!["tokens"]![0]!["token"]!;
        using var http = new HttpClient();
        using var m = new HttpRequestMessage(HttpMethod.Post, url + "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"ollamacontinuity","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var r = await http.SendAsync(m);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Contains("cloud: reply to hi", await r.Content.ReadAsStringAsync());
        Assert.Equal("Bearer sk-cloud-test", Cloud.Requests.Single().Headers["Authorization"]);

        var status = Assert.Single(Session.Invoke("Get-AiGateway"));
        Assert.Equal(true, status.Properties["Running"].Value);
        Assert.Equal(1L, status.Properties["Requests"].Value);
        Assert.Equal(0L, status.Properties["Failovers"].Value);
        Assert.Equal(pid, status.Properties["ProcessId"].Value);

        // A second gateway is refused while this one runs.
        Session.Invoke("Start-AiGateway -Port 0 -ErrorAction SilentlyContinue");
        Assert.Equal("GatewayAlreadyRunning,OllamaContinuity.Commands.StartAiGatewayCommand", Session.Streams!.Error.Single().FullyQualifiedErrorId);

        Session.Invoke("Stop-AiGateway -WhatIf");
        Assert.False(Process.GetProcessById(pid).HasExited);
        Session.Invoke("Stop-AiGateway -Confirm:$false");
        Assert.False(Session.HadErrors);
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid).WaitForExit(5000) ? throw new ArgumentException("gone") : Process.GetProcessById(pid));
        Assert.Empty(Session.Invoke("Get-AiGateway"));
    }

    [Fact]
    public void Binding_beyond_loopback_without_Force_is_refused_before_anything_starts()
    {
        Session.Invoke("Start-AiGateway -BindAddress 0.0.0.0 -Port 0 -ErrorAction SilentlyContinue");
        Assert.Equal("NonLoopbackBindNeedsForce,OllamaContinuity.Commands.StartAiGatewayCommand", Session.Streams!.Error.Single().FullyQualifiedErrorId);
        Assert.False(File.Exists(Path.Combine(StateDir, "User", "gateway.json")));
        Assert.False(File.Exists(Path.Combine(StateDir, "User", "gateway-tokens.json")));
    }

    [Fact]
    public void Start_WhatIf_starts_nothing_and_creates_no_token()
    {
        Session.Invoke("Start-AiGateway -Port 0 -WhatIf");
        Assert.False(Session.HadErrors);
        Assert.False(File.Exists(Path.Combine(StateDir, "User", "gateway-tokens.json")));
        Assert.Empty(Session.Invoke("Get-AiGateway"));
    }
}
