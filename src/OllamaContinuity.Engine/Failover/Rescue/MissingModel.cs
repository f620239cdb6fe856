namespace OllamaContinuity.Failover.Rescue;

/// <summary>
/// An Ollama server that answers 404 for the model may be the only one without it: the next server is tried, and
/// only when none has it is the request an error naming each server and the <c>ollama pull</c> to run.
/// </summary>
internal sealed class MissingModel
{
    private readonly List<BackendEndpoint> _without = [];

    /// <summary>True (and remembered) when <paramref name="result"/> is an Ollama 404.</summary>
    public bool Note(BackendEndpoint ep, AttemptResult result)
    {
        if (ep.Role != BackendRole.Ollama || result.Decision is not { Class: FailureClass.NotFound })
        {
            return false;
        }

        _without.Add(ep);
        return true;
    }

    public int Count => _without.Count;

    /// <summary>The message when <see cref="Count"/> Ollama servers lack the model.</summary>
    public string Describe(bool all)
    {
        var model = _without[0].Model;
        var hosts = string.Join(", ", _without.Select(e => e.Display));
        var pull = string.Join("; ", _without.Select(e => $"OLLAMA_HOST={e.Uri.Scheme}://{e.Uri.Authority} ollama pull {model}"));
        return (all ? $"No Ollama server has the model '{model}' (HTTP 404 from {hosts})." : $"The Ollama server(s) {hosts} do not have the model '{model}' (HTTP 404).")
            + $" Run `ollama pull {model}` on each server ({pull}).";
    }
}
