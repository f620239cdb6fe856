using Xunit;

namespace OllamaContinuity.TestSupport;

/// <summary>
/// A test class with two stand-ins on real loopback sockets, started before each test and stopped after it: a cloud
/// speaking the OpenAI API and an Ollama. A class that needs more overrides <see cref="InitializeAsync"/> and
/// <see cref="DisposeAsync"/> and calls the base.
/// </summary>
public abstract class StandInBackendsTest : IAsyncLifetime
{
    /// <summary>The stand-in cloud (OpenAI API).</summary>
    protected FakeAiServer Cloud { get; private set; } = null!;

    /// <summary>The stand-in Ollama.</summary>
    protected FakeAiServer Ollama { get; private set; } = null!;

    public virtual Task InitializeAsync()
    {
        Cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        Ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        return Task.CompletedTask;
    }

    public virtual async Task DisposeAsync()
    {
        await Cloud.DisposeAsync();
        await Ollama.DisposeAsync();
    }
}
