using System.Management.Automation;
using System.Security;

namespace OllamaContinuity.Internal;

/// <summary>
/// The backend parameters shared by the cmdlets that send requests (Invoke-AiRequest, Start-FailoverDrill):
/// where the cloud and the Ollama servers are, the key and the timeouts. Parameters win over the environment.
/// </summary>
public abstract class BackendCmdlet : AsyncCmdlet
{
    [Parameter]
    [ValidateSet("OpenAI", "Anthropic")]
    public string? CloudProvider { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CloudUri { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CloudModel { get; set; }

    [Parameter]
    public SecureString? CloudApiKey { get; set; }

    [Parameter]
    [ValidateRange(0.1, 3600)]
    public double CloudTimeoutSec { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? OllamaUri { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(OllamaModelCompleter))]
    public string? OllamaModel { get; set; }

    [Parameter]
    [ValidateRange(0.1, 3600)]
    public double OllamaTimeoutSec { get; set; }

    [Parameter]
    [ValidateRange(0.1, 600)]
    public double ConnectTimeoutSec { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? LogPath { get; set; }
}
