using Microsoft.Extensions.AI;
using OllamaContinuity.AI;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>The engine as a Microsoft.Extensions.AI <see cref="IChatClient"/>, used the way a .NET application does, against fake servers.</summary>
public sealed class FailoverChatClientTests : IAsyncLifetime
{
    private FakeAiServer _cloud = null!;
    private FakeAiServer _ollama = null!;
    private FailoverEngine _engine = null!;
    private string _log = "";

    public Task InitializeAsync()
    {
        _cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        _ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        _engine = new FailoverEngine();
        _log = Path.Combine(TestPaths.New("chatclient"), "requests.jsonl");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _engine.Dispose();
        await _cloud.DisposeAsync();
        await _ollama.DisposeAsync();
    }

    private IChatClient Client(Uri? cloudUri = null, string? workflow = null) => new FailoverChatClient(_engine,
        new BackendPlan(
            BackendEndpoint.Cloud(BackendKind.OpenAI, (cloudUri ?? _cloud.ChatUri).ToString(), "cloud-model", "sk-test", new BackendTimeouts { Connect = TimeSpan.FromSeconds(2), Total = TimeSpan.FromSeconds(10) }),
            [BackendEndpoint.Ollama(_ollama.BaseUri.ToString(), "llama3.1:8b")]) { LogPath = _log },
        new FailoverChatClientOptions { Workflow = workflow });

    [Fact]
    public async Task GetResponseAsync_answers_from_the_cloud_and_says_who_served_it()
    {
        using var client = Client();
        var response = await client.GetResponseAsync([new AiChatMessage(ChatRole.System, "be brief"), new AiChatMessage(ChatRole.User, "hi")], new ChatOptions { MaxOutputTokens = 50, Temperature = 0.2f });
        Assert.Equal("cloud: reply to hi", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal("fake-model", response.ModelId);
        Assert.Equal("Cloud", response.AdditionalProperties!["backend"]);
        Assert.Equal(7, response.Usage!.InputTokenCount);
        var sent = _cloud.Requests.Single().Json!;
        Assert.Equal(50, (int)sent["max_tokens"]!);
        Assert.Equal("system", (string?)sent["messages"]![0]!["role"]);
        Assert.True(File.Exists(_log)); // the same request log as Invoke-AiRequest
        Assert.Equal("OllamaContinuity", client.GetService<ChatClientMetadata>()!.ProviderName);
    }

    [Fact]
    public async Task GetResponseAsync_fails_over_to_Ollama_when_the_cloud_is_down()
    {
        using var client = Client(FakeAiServer.RefusedUri());
        var response = await client.GetResponseAsync("hi");
        Assert.Equal("ollama: reply to hi", response.Text);
        Assert.Equal("Ollama", response.AdditionalProperties!["backend"]);
        Assert.Equal("ConnectionRefused", response.AdditionalProperties["failoverReason"]);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_streams_updates_that_add_up_to_the_answer_after_a_failover()
    {
        _cloud.Fault = FaultSpec.Http(503);
        using var client = Client();
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync("stream please"))
        {
            updates.Add(u);
        }

        Assert.True(updates.Count > 2);
        var response = updates.ToChatResponse();
        Assert.Equal("ollama: reply to stream please", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal("Ollama", updates[^1].AdditionalProperties!["backend"]);
        Assert.Equal(11, response.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task A_content_policy_refusal_throws_and_is_never_routed_to_Ollama()
    {
        _cloud.Fault = FaultSpec.Http(400, """{"error":{"code":"content_policy_violation","message":"rejected","type":"invalid_request_error","param":null}}""");
        using var client = Client();
        var e = await Assert.ThrowsAsync<AiRequestException>(() => client.GetResponseAsync("hi"));
        Assert.Equal(AiRequestFailure.ContentPolicyRefusal, e.Failure);
        await Assert.ThrowsAsync<AiRequestException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync("hi"))
            {
            }
        });
        Assert.Equal(0, _ollama.Hits);
    }

    [Fact]
    public async Task The_workflow_routes_through_per_workflow_contingency()
    {
        var contingency = new WorkflowContingency();
        contingency.Workflows.Add("hr-records");
        _engine.AddContingencySource(contingency);
        using var client = Client(workflow: "general");
        Assert.Equal("Cloud", (await client.GetResponseAsync("a")).AdditionalProperties!["backend"]);
        var viaOptions = await client.GetResponseAsync("b", new ChatOptions { AdditionalProperties = new() { [FailoverChatClient.WorkflowKey] = "hr-records" } });
        Assert.Equal("Ollama", viaOptions.AdditionalProperties!["backend"]);
        Assert.Equal("Contingency", viaOptions.AdditionalProperties["failoverReason"]);
        Assert.Equal(1, _cloud.Hits);
    }

    [Fact]
    public async Task Tools_and_non_text_content_are_refused_before_anything_is_sent()
    {
        using var client = Client();
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync("hi", new ChatOptions { Tools = [AIFunctionFactory.Create(() => 1, "one")] }));
        await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([new AiChatMessage(ChatRole.User, [new DataContent(new byte[] { 1 }, "image/png")])]));
        Assert.Equal(0, _cloud.Hits + _ollama.Hits);
    }
}
