// A streaming chat over IChatClient: the model's reasoning (<think>...</think>) is shown dimmed, apart from the answer.
//   dotnet run --project samples/ChatConsole -- path/to/model.gguf
using Engine;
using Microsoft.Extensions.AI;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: ChatConsole MODEL.gguf   (a chat model: Qwen2.5/Qwen3 instruct, DeepSeek-R1-Distill, Llama-3 instruct)");
    return 2;
}

using var model = await Model.LoadAsync(args[0]);
using IChatClient client = model.AsChatClient();
Console.Error.WriteLine($"{model.Info.Name}: {model.Info.Architecture}, {model.Info.ParameterCount / 1e9:F2}B parameters, chat format {model.Info.ChatFormat}. Empty line quits.");

List<ChatMessage> history = [new(ChatRole.System, "You are a helpful assistant.")];
var options = new ChatOptions { Temperature = 0.7f, MaxOutputTokens = 1024 };
while (true)
{
    Console.Write("> ");
    var line = Console.ReadLine();
    if (string.IsNullOrWhiteSpace(line)) break;
    history.Add(new(ChatRole.User, line));

    var updates = new List<ChatResponseUpdate>();
    bool thinking = false;
    await foreach (var update in client.GetStreamingResponseAsync(history, options))
    {
        updates.Add(update);
        foreach (var content in update.Contents)
        {
            if (content is TextReasoningContent reasoning)
            {
                if (!thinking) { Console.Write("[thinking] \u001b[2m"); thinking = true; }
                Console.Write(reasoning.Text);
            }
            else if (content is TextContent text)
            {
                if (thinking) { Console.Write("\u001b[0m\n[answer] "); thinking = false; }
                Console.Write(text.Text);
            }
        }
    }
    if (thinking) Console.Write("\u001b[0m");
    var response = updates.ToChatResponse();
    Console.WriteLine();
    Console.Error.WriteLine($"[{response.Usage?.OutputTokenCount} tokens, finish: {response.FinishReason}]");
    history.AddMessages(updates); // the answer goes back into the conversation; the client drops its reasoning
}
return 0;
